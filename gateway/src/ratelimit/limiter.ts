/**
 * The rate limiter's interface and result values (implementations side by
 * side: redis-limiter.ts, memory-limiter.ts, failover-limiter.ts).
 *
 * The limit: at most `limit` requests per user in any sliding window of
 * `windowMs` — a request at time t counts against every check made before
 * t + windowMs (the window is the half-open interval (now − windowMs, now]).
 * Denied requests are not counted. Outcomes are values: a denied request is
 * a result with `allowed: false`, an unavailable limiter (failure mode
 * `closed`) is a RateLimitUnavailable; neither is thrown.
 */

/** Where a decision was made. `none`: nothing was counted (limiting disabled, or failure mode `open`). */
export type RateLimitSource = 'redis' | 'memory' | 'none'

/** A decision: allowed or denied, with the numbers the rate-limit headers show. */
export interface RateLimitResult {
  readonly allowed: boolean
  /** Requests allowed per window. */
  readonly limit: number
  /** Requests still allowed in the current window after this one (0 when denied). */
  readonly remaining: number
  /**
   * Milliseconds until the oldest request counted in the window leaves it,
   * i.e. until `remaining` next grows by at least one. 1 ≤ resetMs ≤ windowMs
   * for `redis` and `memory` results (the window is never empty after an
   * allowed check); 0 when source is `none`.
   */
  readonly resetMs: number
  /** 0 when allowed; when denied, equal to resetMs (> 0 and ≤ windowMs). */
  readonly retryAfterMs: number
  readonly source: RateLimitSource
  /** Absent (or false) on a decision; see RateLimitUnavailable. */
  readonly unavailable?: false
}

/**
 * No decision could be made: Redis is unavailable and the failure mode is
 * `closed`. The pipeline answers 503 RATE_LIMITER_UNAVAILABLE.
 */
export interface RateLimitUnavailable {
  readonly allowed: false
  readonly unavailable: true
  /** Requests allowed per window (as configured). */
  readonly limit: number
  /** A hint for Retry-After: how soon Redis is probed again, in milliseconds (> 0). */
  readonly retryAfterMs: number
  readonly source: 'none'
}

/** What a gateway-facing limiter answers: a decision, or "unavailable". Narrow with `outcome.unavailable === true`. */
export type RateLimitOutcome = RateLimitResult | RateLimitUnavailable

/** A store-backed limiter (Redis or memory): always decides. */
export interface RateLimiter {
  /**
   * Counts one request for `userId` if the window has room. The memory
   * limiter never rejects; the Redis limiter rejects when Redis fails (the
   * failover limiter turns that into a fallback decision).
   */
  check: (userId: string) => Promise<RateLimitResult>
  close?: () => Promise<void>
}

/** What the pipeline calls: never rejects, never waits on a dead Redis longer than the Redis timeout. */
export interface GatewayRateLimiter {
  check: (userId: string) => Promise<RateLimitOutcome>
  close: () => Promise<void>
}

/** What happens while Redis is unavailable. */
export type FailureMode = 'memory' | 'open' | 'closed'

export const FAILURE_MODES: readonly FailureMode[] = Object.freeze(['memory', 'open', 'closed'])

/** Milliseconds from an arbitrary origin; only differences matter. Injected so tests control time. */
export type Clock = () => number

/** performance.now(): monotonic, so a wall-clock step never shrinks or stretches a window. */
export const monotonicClock: Clock = () => performance.now()

/** The defaults of issue 4, in one place. */
export const RATE_LIMIT_DEFAULTS = Object.freeze({
  enabled: true,
  limit: 30,
  windowMs: 60_000,
  failureMode: 'memory' as FailureMode,
  redisTimeoutMs: 100,
  probeIntervalMs: 1000,
  maxUsers: 10_000
})

/** Checks the numbers every limiter shares; throws on a programming error (config is validated before). */
export function assertLimitOptions (options: { limit: number; windowMs: number }): void {
  if (!Number.isInteger(options.limit) || options.limit < 1) throw new RangeError(`limit must be an integer ≥ 1, got ${options.limit}`)
  if (!Number.isInteger(options.windowMs) || options.windowMs < 1) throw new RangeError(`windowMs must be an integer ≥ 1, got ${options.windowMs}`)
}
