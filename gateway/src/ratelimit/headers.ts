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
 *
 * With token budgets, each budget that is on is one more item of both
 * structured fields, its quota unit named (`qu`, draft-09 section 3.1.2):
 *
 *   RateLimit-Policy: "default";q=30;w=60, "tokens-minute";q=20000;w=60;qu="tokens", "tokens-day";q=200000;w=86400;qu="tokens"
 *   RateLimit: "default";r=29;t=41, "tokens-minute";r=18976;t=60, "tokens-day";r=198976;t=40000
 */
import { ApiError } from '../../../common/src/errors.js'
import type { RateLimitOutcome } from './limiter.js'
import type { Admission, TokenBudgetStatus, TokenDecision } from './token-budget.js'

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
 * `headers` replaces the computed ones (admissionHeaders adds the token budgets' items).
 */
export function deniedError (outcome: RateLimitOutcome, windowMs: number, headers = rateLimitHeaders(outcome, windowMs)): ApiError | undefined {
  if (outcome.allowed) return undefined
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

/** The token budgets' policy names in `RateLimit-Policy` and `RateLimit`. */
export const TOKEN_POLICY_NAMES = Object.freeze({ minute: 'tokens-minute', day: 'tokens-day' })

/** The `qu` of the token policies: not one of draft-09's registered units (requests, content-bytes, concurrent-requests), which have none for tokens. */
const TOKEN_QUOTA_UNIT = '"tokens"'

function tokenItems (budgets: readonly TokenBudgetStatus[], windowSeconds: (budget: TokenBudgetStatus) => number, resetSeconds: (budget: TokenBudgetStatus) => number | undefined): { policy: string[]; state: string[] } {
  const policy: string[] = []
  const state: string[] = []
  for (const budget of budgets) {
    const name = `"${TOKEN_POLICY_NAMES[budget.window]}"`
    policy.push(`${name};q=${budget.limit};w=${windowSeconds(budget)};qu=${TOKEN_QUOTA_UNIT}`)
    const reset = resetSeconds(budget)
    state.push(reset === undefined ? `${name};r=${budget.remaining}` : `${name};r=${budget.remaining};t=${reset}`)
  }
  return { policy, state }
}

function appendItems (headers: Record<string, string>, name: string, items: string[]): void {
  if (items.length === 0) return
  const joined = items.join(', ')
  headers[name] = headers[name] === undefined ? joined : `${headers[name]}, ${joined}`
}

/** Lengths of the token windows, for `w`. */
export interface TokenWindows {
  /** @default 60000 */
  minuteMs: number
  /** @default 86400000 */
  dayMs: number
}

/**
 * The headers of one admission: the request limit's (rateLimitHeaders), with
 * the token budgets added as items of `RateLimit-Policy` and `RateLimit`.
 * A token refusal carries only the token items and `Retry-After` (the
 * request was not counted); the refusing budget's `t` is the Retry-After.
 */
export function admissionHeaders (admission: Admission, windowMs: number, windows: TokenWindows): Record<string, string> {
  const headers = admission.request === undefined ? {} : rateLimitHeaders(admission.request, windowMs)
  const decision = admission.tokens
  if (decision === undefined) return headers
  const windowSeconds = (budget: TokenBudgetStatus): number => secondsRoundedUp(budget.window === 'minute' ? windows.minuteMs : windows.dayMs)
  const resetSeconds = (budget: TokenBudgetStatus): number | undefined => {
    if (budget === decision.deniedBy) return secondsRoundedUp(decision.retryAfterMs)
    return budget.resetMs > 0 ? secondsRoundedUp(budget.resetMs) : undefined
  }
  const items = tokenItems(decision.budgets, windowSeconds, resetSeconds)
  appendItems(headers, 'RateLimit-Policy', items.policy)
  appendItems(headers, 'RateLimit', items.state)
  if (!decision.allowed) headers['Retry-After'] = String(secondsRoundedUp(decision.retryAfterMs))
  return headers
}

/**
 * 429 TOKEN_BUDGET_EXCEEDED for a token refusal: `retry_after_ms`, the
 * refusing `budget` (`minute` or `day`) and `tokens_requested` (the
 * estimate) in the envelope, admissionHeaders on the response.
 */
export function tokenDeniedError (decision: TokenDecision, headers: Record<string, string>): ApiError {
  const budget = decision.deniedBy
  const window = budget?.window ?? 'minute'
  const per = window === 'minute' ? 'per minute' : 'per day'
  const message = budget !== undefined && decision.requested > budget.limit
    ? `Token budget exceeded: this request is estimated at ${decision.requested} tokens, more than the ${budget.limit} tokens allowed ${per}; lower options.max_tokens or shorten the input.`
    : `Token budget exceeded: this request is estimated at ${decision.requested} tokens and ${budget?.remaining ?? 0} of ${budget?.limit ?? 0} tokens ${per} remain.`
  return new ApiError('TOKEN_BUDGET_EXCEEDED', message, {
    extra: { retry_after_ms: Math.max(1, Math.ceil(decision.retryAfterMs)), budget: window, tokens_requested: decision.requested },
    headers
  })
}
