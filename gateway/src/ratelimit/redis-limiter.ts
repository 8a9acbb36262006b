/**
 * The Redis sliding-window limiter: one EVALSHA of SLIDING_WINDOW_SCRIPT per
 * check (ioredis reloads the script on NOSCRIPT, e.g. after SCRIPT FLUSH or a
 * failover to a fresh replica). Shared by every gateway replica, so the limit
 * holds across replicas.
 */
import { keysOnEveryShard, type RedisClient } from '../redis.js'
import { RATE_LIMIT_KEY_PREFIX, rateLimitKey } from './keys.js'
import { assertLimitOptions, type RateLimiter, type RateLimitResult } from './limiter.js'
import { SLIDING_WINDOW_COMMAND, SLIDING_WINDOW_SCRIPT } from './scripts.js'

export interface RedisLimiterOptions {
  /** The shared client (createRedisClient or createRedisClusterClient in ../redis.ts). */
  redis: RedisClient
  /** Requests allowed per window (AI_ENGINE_RATE_LIMIT_PER_MIN; the gateway's default is 30). */
  limit: number
  /** Window length in milliseconds (AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS × 1000; the gateway's default is 60000). */
  windowMs: number
}

export interface RedisLimiter extends RateLimiter {
  /**
   * Runs the script once on PROBE_KEY (on a Cluster, once per master, on a
   * probe key in a slot that master serves); resolves when every one answered,
   * rejects otherwise. Unlike PING this proves the whole path works: EVALSHA,
   * the script, and a write (a Redis over maxmemory answers PING but refuses
   * ZADD); and on a Cluster, that no shard is down.
   */
  probe: () => Promise<void>
}

/**
 * The key probes run on: without braces, so no user's key can ever be it. On
 * a Cluster, `<PROBE_KEY>:{<n>}`, one per master: still never a user's key,
 * which is exactly `ai_ratelimit:{<tag>}`.
 */
export const PROBE_KEY = `${RATE_LIMIT_KEY_PREFIX}probe`

type SlidingWindowCommand = (key: string, limit: number, windowMs: number) => Promise<unknown>

/**
 * check() rejects when Redis fails (unreachable, refusing, timed out): that is
 * the failover limiter's business, not a decision.
 */
export function createRedisLimiter (options: RedisLimiterOptions): RedisLimiter {
  assertLimitOptions(options)
  const { redis, limit, windowMs } = options
  redis.defineCommand(SLIDING_WINDOW_COMMAND, { numberOfKeys: 1, lua: SLIDING_WINDOW_SCRIPT })
  const command = (redis as unknown as Record<string, SlidingWindowCommand>)[SLIDING_WINDOW_COMMAND]!

  return {
    async check (userId) {
      const reply = await command.call(redis, rateLimitKey(userId), limit, windowMs)
      return toResult(reply, limit, windowMs)
    },
    async probe () {
      const keys = keysOnEveryShard(redis, PROBE_KEY)
      if (keys.length === 0) throw new Error('the cluster client knows no slots yet')
      // At most one member per second on each probe key, gone a second later.
      await Promise.all(keys.map(async (key) => toResult(await command.call(redis, key, 1, 1000), 1, 1000)))
    }
  }
}

function toResult (reply: unknown, limit: number, windowMs: number): RateLimitResult {
  if (!Array.isArray(reply) || reply.length !== 3 || !reply.every((value) => typeof value === 'number')) {
    throw new Error(`unexpected reply from the rate limit script: ${JSON.stringify(reply)}`)
  }
  const [allowedFlag, remaining, resetMs] = reply as [number, number, number]
  const allowed = allowedFlag === 1
  return {
    allowed,
    limit,
    remaining,
    resetMs,
    retryAfterMs: allowed ? 0 : Math.min(Math.max(resetMs, 1), windowMs),
    source: 'redis'
  }
}
