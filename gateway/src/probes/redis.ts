/**
 * Redis probe: PING on the process's one client (the rate limiter's and the
 * cache's); on a Redis Cluster, a key-routed command to every master. A client that is not connected is down at once, without a
 * command; a frozen Redis is down at the deadline (or at the client's own
 * command timeout, whichever comes first).
 */
import { isRedisReady, pingEveryShard, type RedisClient } from '../redis.js'
import { timedProbe, type Probe } from './probe.js'

export interface RedisProbeOptions {
  client: RedisClient
  /** @default 1000 */
  timeoutMs?: number
  now: () => number
  /** Called on each failed probe (the Redis errors metric). @default undefined */
  onFailure?: (() => void) | undefined
}

export function createRedisProbe (options: RedisProbeOptions): Probe {
  const { client } = options
  const probe = timedProbe(async () => {
    if (!isRedisReady(client)) return `not connected (${client.status})`
    // A Cluster is up only when every master answers: a dead shard is not hidden by the live ones.
    try {
      await pingEveryShard(client)
    } catch (error) {
      if ((error as Error).message.startsWith('unexpected PING reply')) return 'unexpected reply'
      throw error
    }
    return undefined
  }, options.timeoutMs ?? 1000, options.now)
  return async () => {
    const result = await probe()
    if (!result.ok) options.onFailure?.()
    return result
  }
}
