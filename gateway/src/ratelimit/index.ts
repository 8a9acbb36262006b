/**
 * The rate limiter's public face: createRateLimiter picks the implementation
 * from the configuration; everything the pipeline needs is re-exported here.
 */
import type { RedisClient } from '../redis.js'
import type { Logger } from '../../../common/src/logger.js'
import { createFailoverLimiter } from './failover-limiter.js'
import { assertLimitOptions, RATE_LIMIT_DEFAULTS, type Clock, type FailureMode, type GatewayRateLimiter, type RateLimitResult } from './limiter.js'
import { createMemoryLimiter } from './memory-limiter.js'
import { createMemoryTokenLimiter } from './memory-token-limiter.js'
import { createRedisTokenLimiter } from './redis-token-limiter.js'
import { tokenBudgetsOn, type Admission, type Reservation, type TokenBudgetLimits, type TokenBudgetReader } from './token-budget.js'

export * from './limiter.js'
export { rateLimitKey, userTag, RATE_LIMIT_KEY_PREFIX } from './keys.js'
export { rateLimitHeaders, deniedError, secondsRoundedUp, RATE_LIMIT_POLICY_NAME } from './headers.js'
export { createRedisLimiter, PROBE_KEY, type RedisLimiter, type RedisLimiterOptions } from './redis-limiter.js'
export { createMemoryLimiter, type MemoryLimiter, type MemoryLimiterOptions } from './memory-limiter.js'
export {
  createFailoverLimiter, FAILOVER_LOG_MESSAGES, type FailoverLimiter, type FailoverLimiterOptions, type FailoverState
} from './failover-limiter.js'
export { RATE_LIMIT_SETTINGS, TOKEN_BUDGET_SETTINGS } from './settings.js'
export * from './token-budget.js'
export { tokenBudgetKeys, TOKEN_KEY_PREFIX, type TokenBudgetKeys } from './keys.js'
export { createRedisTokenLimiter, type RedisTokenLimiterOptions } from './redis-token-limiter.js'
export { createMemoryTokenLimiter, type MemoryTokenLimiter, type MemoryTokenLimiterOptions } from './memory-token-limiter.js'
export { estimateTokens } from './token-estimate.js'
export { admissionHeaders, tokenDeniedError, TOKEN_POLICY_NAMES, type TokenWindows } from './headers.js'

export interface RateLimiterOptions {
  /** AI_ENGINE_RATE_LIMIT_ENABLED; when false every check allows with source `none` (and no headers). @default true */
  enabled?: boolean
  /** AI_ENGINE_TOKEN_LIMIT_PER_MIN and AI_ENGINE_TOKEN_LIMIT_PER_DAY; on when either limit is set, with or without the request limit. @default undefined (off) */
  tokens?: TokenBudgetLimits | undefined
  /** Longest a settle waits on Redis, off the request path. @default 1000 */
  settleTimeoutMs?: number
  /** Told of each failed Redis call (with Redis configured). @default undefined */
  onRedisError?: ((error: unknown) => void) | undefined
  /** Wall clock for the token budgets' day, ms since the epoch. @default Date.now */
  wallClock?: Clock
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

export interface ConfiguredRateLimiter extends GatewayRateLimiter, TokenBudgetReader {
  state: () => RateLimiterState
  /** Token budgets are on: the pipeline admits after the body (it needs it for the estimate). */
  readonly tokenBudgetsOn: boolean
  /** The request limit (when enabled) and the token reservation (when on) in one decision. Never rejects. */
  admit: (userId: string, tokens: number) => Promise<Admission>
  /** Settles a reservation to the tokens really used; fire and forget (failures logged and counted, never thrown). */
  settle: (reservation: Reservation, usedTokens: number) => void
  /** Settles that failed so far (for metrics). */
  settleFailures: () => number
}

/**
 * Disabled (no request limit, no token budgets): allowed, nothing counted, no
 * headers. With Redis: the failover limiter. Without: memory only.
 */
export function createRateLimiter (options: RateLimiterOptions): ConfiguredRateLimiter {
  const limit = options.limit ?? RATE_LIMIT_DEFAULTS.limit
  const windowMs = options.windowMs ?? RATE_LIMIT_DEFAULTS.windowMs
  assertLimitOptions({ limit, windowMs })
  const requestsOn = options.enabled !== false
  const tokens = tokenBudgetsOn(options.tokens) ? options.tokens : undefined
  if (!requestsOn && tokens === undefined) {
    const allowed: RateLimitResult = Object.freeze({ allowed: true, limit, remaining: limit, resetMs: 0, retryAfterMs: 0, source: 'none' })
    return {
      check: async () => allowed,
      admit: async () => ({ request: allowed, tokens: undefined, reservation: undefined }),
      settle: () => {},
      tokenBudgets: async () => [],
      settleFailures: () => 0,
      close: async () => {},
      state: () => 'disabled',
      tokenBudgetsOn: false
    }
  }
  const maxUsers = options.maxUsers ?? RATE_LIMIT_DEFAULTS.maxUsers
  const memory = createMemoryLimiter({ limit, windowMs, maxUsers, clock: options.clock })
  const memoryTokens = tokens === undefined
    ? undefined
    : createMemoryTokenLimiter({ tokens, requests: requestsOn ? memory : undefined, clock: options.clock, wallClock: options.wallClock, maxUsers })
  if (options.redis === undefined) {
    return {
      check: memory.check,
      admit: memoryTokens === undefined
        ? async (userId) => ({ request: await memory.check(userId), tokens: undefined, reservation: undefined })
        : memoryTokens.admit,
      // A memory settle cannot fail.
      settle: (reservation, used) => { void memoryTokens?.settle(reservation, used) },
      tokenBudgets: async (userId) => await memoryTokens?.budgets(userId) ?? [],
      settleFailures: () => 0,
      close: async () => {
        await memory.close()
        await memoryTokens?.close()
      },
      state: () => 'memory',
      tokenBudgetsOn: tokens !== undefined
    }
  }
  const failover = createFailoverLimiter({
    redis: options.redis,
    limit,
    windowMs,
    failureMode: options.failureMode ?? RATE_LIMIT_DEFAULTS.failureMode,
    timeoutMs: options.redisTimeoutMs ?? RATE_LIMIT_DEFAULTS.redisTimeoutMs,
    probeIntervalMs: options.probeIntervalMs ?? RATE_LIMIT_DEFAULTS.probeIntervalMs,
    maxUsers,
    logger: options.logger,
    clock: options.clock,
    fallback: memory,
    tokens: tokens === undefined || memoryTokens === undefined
      ? undefined
      : {
          primary: createRedisTokenLimiter({ redis: options.redis, requestLimit: requestsOn ? limit : undefined, windowMs, tokens }),
          fallback: memoryTokens
        },
    settleTimeoutMs: options.settleTimeoutMs,
    onRedisError: options.onRedisError
  })
  return Object.assign(failover, { tokenBudgetsOn: tokens !== undefined })
}
