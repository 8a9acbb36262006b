/**
 * Which finished requests are usage, and what each adds to the ledger.
 *
 * A request counts when it was admitted: a proxied AI route
 * (`/v1/ai/generate`, `/v1/ai/chat`), a verified user, and not refused by
 * the rate limiter (429 RATE_LIMIT_EXCEEDED or TOKEN_BUDGET_EXCEEDED, 503
 * RATE_LIMITER_UNAVAILABLE). Everything admitted was counted by the request
 * limit and had its token reservation settled, so the ledger counts it too,
 * whatever the answer (an upstream error, a client that left): its tokens
 * are what it settled to, 0 when nothing was used. Reading one's usage
 * (`GET /v1/ai/usage`) is not usage.
 *
 * The use case is the client's, so it is kept only once upstream-ai has
 * accepted it (a success, or tokens spent); other admitted requests go to
 * the row with no use case (''). Why: otherwise any client could mint a new
 * ledger row per request with made-up names, and fill the pending cap.
 */
import type { CompletionRecord } from '../pipeline/completion-log.js'

/** The routes whose requests are usage. */
export const USAGE_ROUTES: ReadonlySet<string> = new Set(['/v1/ai/generate', '/v1/ai/chat'])

/** Refusals made before a request was admitted: not usage. */
const REFUSED_BEFORE_ADMISSION: ReadonlySet<string> = new Set(['RATE_LIMIT_EXCEEDED', 'TOKEN_BUDGET_EXCEEDED', 'RATE_LIMITER_UNAVAILABLE'])

/** A use case name worth its own row (upstream-ai's names are short identifiers). */
const USE_CASE = /^[A-Za-z0-9_.:-]{1,64}$/

/** The row for requests whose use case upstream-ai did not accept (shown as `null`). */
export const NO_USE_CASE = ''

/** One ledger row's identity. */
export interface UsageKey {
  userId: string
  /** The UTC day, `YYYY-MM-DD`. */
  day: string
  /** `''` (NO_USE_CASE) when the request had no accepted use case. */
  useCase: string
}

/** What rows add up. */
export interface UsageCounts {
  requests: number
  tokens: number
  cachedRequests: number
}

export interface UsageEntry extends UsageKey, UsageCounts {}

/** `YYYY-MM-DD` of a wall-clock time, in UTC. */
export function utcDay (epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 10)
}

/** What one completion record adds to the ledger, or undefined when it is not usage. */
export function usageOf (record: CompletionRecord, epochMs: number): UsageEntry | undefined {
  if (record.user_id === null || !USAGE_ROUTES.has(record.route) || record.rate_limited) return undefined
  if (record.error_type !== undefined && REFUSED_BEFORE_ADMISSION.has(record.error_type)) return undefined
  // A cache hit or an answer shared from another request's call spent nothing (its record still carries the answer's tokens).
  const free = record.cached || record.collapsed
  const tokens = !free && record.tokens_used !== null && Number.isFinite(record.tokens_used) && record.tokens_used > 0 ? Math.round(record.tokens_used) : 0
  const accepted = record.status === 'success' || tokens > 0
  const useCase = accepted && record.use_case !== null && USE_CASE.test(record.use_case) ? record.use_case : NO_USE_CASE
  return {
    userId: record.user_id,
    day: utcDay(epochMs),
    useCase,
    requests: 1,
    tokens,
    cachedRequests: record.cached ? 1 : 0
  }
}
