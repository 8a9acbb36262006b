/**
 * The rate limiter's public face: createRateLimiter picks the implementation
 * from the configuration; everything the pipeline needs is re-exported here.
 */
import type { RedisClient } from '../redis.js'
import type { Logger } from '../../../common/src/logger.js'
import { createFailoverLimiter } from './failover-limiter.js'
import { assertLimitOptions, RATE_LIMIT_DEFAULTS, type Clock, type FailureMode, type GatewayRateLimiter, type RateLimitResult } from './limiter.js'
import { createMemoryLimiter } from './memory-limiter.js'

export * from './limiter.js'
export { rateLimitKey, userTag, RATE_LIMIT_KEY_PREFIX } from './keys.js'
export { rateLimitHeaders, deniedError, secondsRoundedUp, RATE_LIMIT_POLICY_NAME } from './headers.js'
export { createRedisLimiter, PROBE_KEY, type RedisLimiter, type RedisLimiterOptions } from './redis-limiter.js'
export { createMemoryLimiter, type MemoryLimiter, type MemoryLimiterOptions } from './memory-limiter.js'
export {
  createFailoverLimiter, FAILOVER_LOG_MESSAGES, type FailoverLimiter, type FailoverLimiterOptions, type FailoverState
} from './failover-limiter.js'
export { RATE_LIMIT_SETTINGS } from './settings.js'

export interface RateLimiterOptions {
  /** AI_ENGINE_RATE_LIMIT_ENABLED; when false every check allows with source `none` (and no headers). @default true */
  enabled?: boolean
  /** AI_ENGINE_RATE_LIMIT_PER_MIN. @default 30 */
  limit?: number
  /** AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS × 1000. @default 60000 */
  windowMs?: number
  /** The shared client when REDIS_URL (or REDIS_CLUSTER_NODES) is set; absent: the in-memory limiter alone. @default undefined */
  redis?: RedisClient
  /** AI_ENGINE_RATE_LIMIT_FAILURE_MODE. @default 'memory' */
  failureMode?: FailureMode
  /** AI_ENGINE_REDIS_TIMEOUT_MS. @default 100 */
  redisTimeoutMs?: number
  /** Pause between probes of Redis while on the fallback, in milliseconds. @default 1000 */
  probeIntervalMs?: number
  /** Users tracked in memory (no Redis, or the `memory` fallback). @default 10000 */
  maxUsers?: number
  logger: Logger
  /** @default monotonicClock */
  clock?: Clock
}

/**
 * What the limiter is doing now, for health and metrics: `disabled`;
 * `memory` (no Redis configured); `redis`; `fallback` (Redis configured but
 * unavailable: the failure mode answers).
 */
export type RateLimiterState = 'disabled' | 'memory' | 'redis' | 'fallback'

export interface ConfiguredRateLimiter extends GatewayRateLimiter {
  state: () => RateLimiterState
}

/** Disabled: allowed, nothing counted, no headers. With Redis: the failover limiter. Without: memory only. */
export function createRateLimiter (options: RateLimiterOptions): ConfiguredRateLimiter {
  const limit = options.limit ?? RATE_LIMIT_DEFAULTS.limit
  const windowMs = options.windowMs ?? RATE_LIMIT_DEFAULTS.windowMs
  assertLimitOptions({ limit, windowMs })
  if (options.enabled === false) {
    const allowed: RateLimitResult = Object.freeze({ allowed: true, limit, remaining: limit, resetMs: 0, retryAfterMs: 0, source: 'none' })
    return { check: async () => allowed, close: async () => {}, state: () => 'disabled' }
  }
  const maxUsers = options.maxUsers ?? RATE_LIMIT_DEFAULTS.maxUsers
  if (options.redis === undefined) {
    const memory = createMemoryLimiter({ limit, windowMs, maxUsers, clock: options.clock })
    return { check: memory.check, close: memory.close, state: () => 'memory' }
  }
  return createFailoverLimiter({
    redis: options.redis,
    limit,
    windowMs,
    failureMode: options.failureMode ?? RATE_LIMIT_DEFAULTS.failureMode,
    timeoutMs: options.redisTimeoutMs ?? RATE_LIMIT_DEFAULTS.redisTimeoutMs,
    probeIntervalMs: options.probeIntervalMs ?? RATE_LIMIT_DEFAULTS.probeIntervalMs,
    maxUsers,
    logger: options.logger,
    clock: options.clock
  })
}
