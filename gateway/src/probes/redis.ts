/**
 * Redis probe: PING on the process's one client (the rate limiter's and the
 * cache's). A client that is not connected is down at once, without a
 * command; a frozen Redis is down at the deadline (or at the client's own
 * command timeout, whichever comes first).
 */
import { isRedisReady, type Redis } from '../redis.js'
import { timedProbe, type Probe } from './probe.js'

export interface RedisProbeOptions {
  client: Redis
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
    const reply = await client.ping()
    return reply === 'PONG' ? undefined : 'unexpected reply'
  }, options.timeoutMs ?? 1000, options.now)
  return async () => {
    const result = await probe()
    if (!result.ok) options.onFailure?.()
    return result
  }
}
