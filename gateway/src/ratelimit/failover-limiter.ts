/**
 * The limiter the pipeline calls when REDIS_URL is set: Redis while it
 * answers, the failure mode while it does not.
 *
 * One decision per request, never a request waiting on a dead Redis:
 * - while on Redis, a check that fails (connection down, an error reply, or no
 *   answer within `timeoutMs`) switches to the fallback and is itself answered
 *   by the fallback; a check made while the client is not connected does not
 *   even try Redis;
 * - while on the fallback, checks never touch Redis; a background probe
 *   (the script itself on a probe key, every `probeIntervalMs`, each bounded
 *   by `timeoutMs`) switches back as soon as Redis runs it. A Redis that
 *   answers PING but refuses writes (over maxmemory) is still unavailable, so
 *   the limiter does not flap.
 * One warning when switching to the fallback, one info line when back.
 *
 * Failure modes: `memory` answers from an in-process sliding window (the same
 * algorithm, per instance); `open` allows everything (source `none`, nothing
 * counted); `closed` answers RateLimitUnavailable (the pipeline's 503
 * RATE_LIMITER_UNAVAILABLE).
 *
 * With token budgets (`tokens`), admit() makes the same one decision with
 * the request limit and the reservation together (redis-token-limiter.ts,
 * memory-token-limiter.ts), and settle() settles a reservation where it was
 * made, off the request path, bounded by `settleTimeoutMs`: a failure is
 * logged and counted, never thrown; a Redis reservation left unsettled
 * keeps its estimate until it leaves its window.
 */
import type { Logger } from '../../../common/src/logger.js'
import { isRedisReady, withDeadline, type RedisClient } from '../redis.js'
import {
  assertLimitOptions, monotonicClock, RATE_LIMIT_DEFAULTS,
  type Clock, type FailureMode, type GatewayRateLimiter, type RateLimiter, type RateLimitOutcome, type RateLimitResult
} from './limiter.js'
import { createMemoryLimiter } from './memory-limiter.js'
import { createRedisLimiter, type RedisLimiter } from './redis-limiter.js'
import type { Admission, Reservation, TokenBudgetStatus, TokenLimiter } from './token-budget.js'

export interface FailoverLimiterOptions {
  /** The shared client (createRedisClient or createRedisClusterClient in ../redis.ts); used for the limiter and the probe. */
  redis: RedisClient
  /** Requests allowed per window (AI_ENGINE_RATE_LIMIT_PER_MIN; the gateway's default is 30). */
  limit: number
  /** Window length in milliseconds (AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS × 1000; the gateway's default is 60000). */
  windowMs: number
  /** What to do while Redis is unavailable (AI_ENGINE_RATE_LIMIT_FAILURE_MODE). @default 'memory' */
  failureMode?: FailureMode
  /** Longest a check waits on Redis (AI_ENGINE_REDIS_TIMEOUT_MS). @default 100 */
  timeoutMs?: number
  /** Pause between two probes of Redis while on the fallback, in milliseconds. @default 1000 */
  probeIntervalMs?: number
  /** Users tracked by the memory fallback. @default 10000 */
  maxUsers?: number
  logger: Logger
  /** Clock of the memory fallback and of the outage duration. @default monotonicClock */
  clock?: Clock
  /** The Redis-backed limiter; its probe() decides when Redis is back. @default createRedisLimiter({ redis, limit, windowMs }) */
  primary?: RedisLimiter
  /** The `memory` failure mode's limiter. @default createMemoryLimiter({ limit, windowMs, clock, maxUsers }) */
  fallback?: RateLimiter
  /** Token budgets: the Redis admission and the `memory` failure mode's one. @default undefined (token budgets off) */
  tokens?: { primary: TokenLimiter; fallback: TokenLimiter } | undefined
  /** Longest a settle waits on Redis, off the request path. @default 1000 */
  settleTimeoutMs?: number
  /** Told of each failed Redis call (an error or the deadline), for the Redis error metric. @default undefined */
  onRedisError?: ((error: unknown) => void) | undefined
}

/** The two log lines of a switch (msg field), stable for alerts and tests. */
export const FAILOVER_LOG_MESSAGES = Object.freeze({
  fallback: 'rate limiter: Redis unavailable, switching to the fallback',
  recovered: 'rate limiter: Redis is back, switching back from the fallback'
})

/** `redis`: checks go to Redis. `fallback`: the failure mode answers, and Redis is probed. */
export type FailoverState = 'redis' | 'fallback'

export interface FailoverLimiter extends GatewayRateLimiter {
  /** The current state (for health and metrics). */
  state: () => FailoverState
  /** The request limit and the token reservation in one decision (just the request limit without token budgets). Never rejects. */
  admit: (userId: string, tokens: number) => Promise<Admission>
  /** Settles a reservation where it was made; fire and forget (failures are logged and counted). */
  settle: (reservation: Reservation, usedTokens: number) => void
  /** The budgets now; empty when token budgets are off or cannot be read (Redis unavailable, failure mode open or closed). */
  tokenBudgets: (userId: string) => Promise<TokenBudgetStatus[]>
  /** Settles that failed so far (for metrics). */
  settleFailures: () => number
}

/** The settle failure line (msg field): logged once per run of failures. */
export const SETTLE_FAILED_LOG_MESSAGE = 'token budget: settling a reservation failed; it keeps its estimate until it leaves its window'

export function createFailoverLimiter (options: FailoverLimiterOptions): FailoverLimiter {
  assertLimitOptions(options)
  const { redis, limit, windowMs, logger } = options
  const failureMode = options.failureMode ?? RATE_LIMIT_DEFAULTS.failureMode
  const timeoutMs = options.timeoutMs ?? RATE_LIMIT_DEFAULTS.redisTimeoutMs
  const probeIntervalMs = options.probeIntervalMs ?? RATE_LIMIT_DEFAULTS.probeIntervalMs
  const clock = options.clock ?? monotonicClock
  const primary = options.primary ?? createRedisLimiter({ redis, limit, windowMs })
  const fallback = options.fallback ?? createMemoryLimiter({
    limit, windowMs, clock, maxUsers: options.maxUsers ?? RATE_LIMIT_DEFAULTS.maxUsers
  })

  const tokens = options.tokens
  const settleTimeoutMs = options.settleTimeoutMs ?? 1000
  let settleFailures = 0
  let failingSettles = false

  let state: FailoverState = 'redis'
  let fallbackSince = 0
  let probeTimer: NodeJS.Timeout | undefined
  let closed = false

  const openResult: RateLimitResult = Object.freeze({
    allowed: true, limit, remaining: limit, resetMs: 0, retryAfterMs: 0, source: 'none'
  })
  const unavailable: RateLimitOutcome = Object.freeze({
    allowed: false, unavailable: true, limit, retryAfterMs: probeIntervalMs, source: 'none'
  })

  const decideWithoutRedis = async (userId: string): Promise<RateLimitOutcome> => {
    switch (failureMode) {
      case 'memory': return await fallback.check(userId)
      case 'open': return openResult
      case 'closed': return unavailable
    }
  }

  const scheduleProbe = (): void => {
    if (closed || probeTimer !== undefined) return
    probeTimer = setTimeout(() => {
      void probe().then((answered) => {
        probeTimer = undefined
        if (closed) return
        if (answered) backOnRedis()
        else scheduleProbe()
      })
    }, probeIntervalMs)
    // A probe must not keep the process alive on shutdown.
    probeTimer.unref()
  }

  const probe = async (): Promise<boolean> => {
    if (!isRedisReady(redis)) return false
    try {
      await withDeadline(primary.probe(), timeoutMs)
      return true
    } catch {
      return false
    }
  }

  const switchToFallback = (error: unknown): void => {
    if (state === 'fallback' || closed) return
    state = 'fallback'
    fallbackSince = clock()
    logger.warn(
      { error: describe(error), failureMode, timeoutMs },
      FAILOVER_LOG_MESSAGES.fallback
    )
    scheduleProbe()
  }

  const backOnRedis = (): void => {
    if (state === 'redis') return
    state = 'redis'
    logger.info(
      { fallbackMs: Math.round(clock() - fallbackSince), failureMode },
      FAILOVER_LOG_MESSAGES.recovered
    )
  }

  /** Runs `attempt(userId)` on Redis while in state `redis` (bounded); undefined when the failure mode must answer. */
  const onRedis = async <T, A>(attempt: (argument: A) => Promise<T>, argument: A): Promise<T | undefined> => {
    if (state !== 'redis') return undefined
    if (!isRedisReady(redis)) {
      switchToFallback(new Error(`redis connection is ${redis.status}`))
      return undefined
    }
    try {
      return await withDeadline(attempt(argument), timeoutMs)
    } catch (error) {
      options.onRedisError?.(error)
      switchToFallback(error)
      return undefined
    }
  }

  const settled = (): void => { failingSettles = false }
  const settleFailed = (error: unknown): void => {
    settleFailures++
    options.onRedisError?.(error)
    // One warning per run of failures (an outage fails them all), debug lines for the rest.
    if (failingSettles) logger.debug({ error: describe(error) }, SETTLE_FAILED_LOG_MESSAGE)
    else logger.warn({ error: describe(error), settleTimeoutMs }, SETTLE_FAILED_LOG_MESSAGE)
    failingSettles = true
  }

  // The attempt and its argument apart: no closure and no async wrapper per check.
  const checkOnRedis = (userId: string): Promise<RateLimitResult> => primary.check(userId)
  const check = async (userId: string): Promise<RateLimitOutcome> =>
    await onRedis(checkOnRedis, userId) ?? await decideWithoutRedis(userId)

  return {
    async admit (userId, need) {
      if (tokens === undefined) return { request: await check(userId), tokens: undefined, reservation: undefined }
      const decided = await onRedis(async (user: string) => await tokens.primary.admit(user, need), userId)
      if (decided !== undefined) return decided
      switch (failureMode) {
        case 'memory': return await tokens.fallback.admit(userId, need)
        case 'open': return { request: openResult, tokens: undefined, reservation: undefined }
        case 'closed': return { request: unavailable, tokens: undefined, reservation: undefined }
      }
    },
    settle (reservation, usedTokens) {
      if (tokens === undefined) return
      const done = reservation.source === 'redis'
        ? withDeadline(tokens.primary.settle(reservation, usedTokens), settleTimeoutMs)
        : tokens.fallback.settle(reservation, usedTokens)
      done.then(settled, settleFailed)
    },
    async tokenBudgets (userId) {
      if (tokens === undefined) return []
      const read = await onRedis(async (user: string) => await tokens.primary.budgets(user), userId)
      if (read !== undefined) return read
      return failureMode === 'memory' ? await tokens.fallback.budgets(userId) : []
    },
    settleFailures: () => settleFailures,
    check,
    state: () => state,
    async close () {
      closed = true
      if (probeTimer !== undefined) clearTimeout(probeTimer)
      probeTimer = undefined
      await fallback.close?.()
      await tokens?.fallback.close?.()
    }
  }
}

function describe (error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
