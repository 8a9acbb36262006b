/**
 * Rate-limit response headers and the denial errors, as pure functions of a
 * limiter outcome.
 *
 * Two header families: the de-facto `X-RateLimit-*` trio, and the structured
 * fields of draft-ietf-httpapi-ratelimit-headers-09 (`RateLimit-Policy`,
 * `RateLimit`). All times are delta-seconds (seconds from now, integers,
 * rounded up), never timestamps, so client clocks do not matter.
 *
 *   X-RateLimit-Limit: 30
 *   X-RateLimit-Remaining: 29
 *   X-RateLimit-Reset: 41                   (seconds until the oldest counted request leaves the window)
 *   RateLimit-Policy: "default";q=30;w=60
 *   RateLimit: "default";r=29;t=41
 *   Retry-After: 41                         (denied only; then t and X-RateLimit-Reset are the same value)
 */
import { ApiError } from '../../../common/src/errors.js'
import type { RateLimitOutcome } from './limiter.js'

/** The quota policy's name in `RateLimit-Policy` and `RateLimit` (a structured-field String). */
export const RATE_LIMIT_POLICY_NAME = 'default'

/** Milliseconds to whole seconds, rounded up, at least 1. */
export function secondsRoundedUp (ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000))
}

/**
 * The headers for one outcome:
 * - a decision (source `redis` or `memory`): the five rate-limit headers, plus
 *   `Retry-After` when denied;
 * - nothing counted (source `none`: limiting disabled or failure mode `open`):
 *   no headers, since no quota was applied;
 * - unavailable (failure mode `closed`): `Retry-After` only.
 */
export function rateLimitHeaders (outcome: RateLimitOutcome, windowMs: number): Record<string, string> {
  if (outcome.unavailable === true) return { 'Retry-After': String(secondsRoundedUp(outcome.retryAfterMs)) }
  if (outcome.source === 'none') return {}
  // When denied, the reset and Retry-After name the same moment (draft-09, section 6).
  const resetSeconds = outcome.allowed ? secondsRoundedUp(outcome.resetMs) : secondsRoundedUp(outcome.retryAfterMs)
  const headers: Record<string, string> = {
    'X-RateLimit-Limit': String(outcome.limit),
    'X-RateLimit-Remaining': String(outcome.remaining),
    'X-RateLimit-Reset': String(resetSeconds),
    'RateLimit-Policy': `"${RATE_LIMIT_POLICY_NAME}";q=${outcome.limit};w=${secondsRoundedUp(windowMs)}`,
    RateLimit: `"${RATE_LIMIT_POLICY_NAME}";r=${outcome.remaining};t=${resetSeconds}`
  }
  if (!outcome.allowed) headers['Retry-After'] = String(resetSeconds)
  return headers
}

/**
 * The error to answer with, or undefined when the request may proceed:
 * - denied: 429 RATE_LIMIT_EXCEEDED, `retry_after_ms` (> 0, ≤ window) in the
 *   envelope, the rate-limit headers and `Retry-After` on the response;
 * - unavailable: 503 RATE_LIMITER_UNAVAILABLE, `retry_after_ms` and `Retry-After`.
 */
export function deniedError (outcome: RateLimitOutcome, windowMs: number): ApiError | undefined {
  if (outcome.allowed) return undefined
  const headers = rateLimitHeaders(outcome, windowMs)
  if (outcome.unavailable === true) {
    return new ApiError('RATE_LIMITER_UNAVAILABLE', undefined, {
      extra: { retry_after_ms: Math.max(1, Math.ceil(outcome.retryAfterMs)) },
      headers
    })
  }
  const retryAfterMs = Math.min(Math.max(Math.ceil(outcome.retryAfterMs), 1), windowMs)
  return new ApiError(
    'RATE_LIMIT_EXCEEDED',
    `Rate limit exceeded: at most ${outcome.limit} requests per ${formatWindow(windowMs)}.`,
    { extra: { retry_after_ms: retryAfterMs }, headers }
  )
}

function formatWindow (windowMs: number): string {
  if (windowMs % 1000 !== 0) return `${windowMs} ms`
  const seconds = windowMs / 1000
  return seconds === 1 ? 'second' : `${seconds} seconds`
}
