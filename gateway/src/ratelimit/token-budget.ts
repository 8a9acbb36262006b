/**
 * Per-user token budgets (issue 10): the interface and the values the
 * pipeline, the usage route and the implementations share
 * (redis-token-limiter.ts, memory-token-limiter.ts, and the failover limiter
 * that picks between them).
 *
 * A request reserves an estimate of its tokens before it is forwarded, in
 * the same atomic step as the request limit (all or nothing: a request
 * refused for either reason counts against neither), and settles the
 * reservation to what it really used after the answer. Two budgets, each
 * optional: any sliding window of 60 s (reservations counted by the time
 * they were made), and the UTC calendar day. Open reservations count at
 * their estimate until they are settled.
 */
import type { RateLimitOutcome, RateLimitResult } from './limiter.js'

/** One budget's state for one user, as GET /v1/ai/usage shows it. */
export interface TokenBudgetStatus {
  /** `minute`: any sliding 60 s window; `day`: the UTC calendar day. */
  window: 'minute' | 'day'
  /** Tokens allowed in the window (AI_ENGINE_TOKEN_LIMIT_PER_MIN or AI_ENGINE_TOKEN_LIMIT_PER_DAY). */
  limit: number
  /** Tokens reserved or settled in the window now (open reservations count at their estimate). */
  used: number
  /** limit − used, never below 0. */
  remaining: number
  /** Milliseconds until `remaining` next grows (minute: the oldest reservation leaves the window, 0 when none is in it; day: the next UTC midnight). */
  resetMs: number
}

/** What the usage route reads: the caller's budgets now. */
export interface TokenBudgetReader {
  /**
   * The caller's token budgets now (empty array when token budgets are off,
   * or when they cannot be read: Redis unavailable with failure mode `open`
   * or `closed`). Never rejects.
   */
  tokenBudgets: (userId: string) => Promise<TokenBudgetStatus[]>
}

/** The budgets' numbers: a limit of undefined turns that budget off. */
export interface TokenBudgetLimits {
  /** AI_ENGINE_TOKEN_LIMIT_PER_MIN. @default undefined (off) */
  perMinute: number | undefined
  /** AI_ENGINE_TOKEN_LIMIT_PER_DAY. @default undefined (off) */
  perDay: number | undefined
  /** Length of the `minute` window. Only tests change it. @default 60000 */
  minuteMs?: number
  /** Length of the `day`, from the Unix epoch (so the default is the UTC calendar day). Only tests change it. @default 86400000 */
  dayMs?: number
}

export const TOKEN_BUDGET_DEFAULTS = Object.freeze({
  minuteMs: 60_000,
  dayMs: 86_400_000,
  /** AI_ENGINE_TOKEN_ESTIMATE_DEFAULT_MAX_TOKENS: the output a request naming no `max_tokens` is assumed to ask for. */
  defaultMaxTokens: 1024
})

/** True when at least one budget is on. */
export function tokenBudgetsOn (limits: TokenBudgetLimits | undefined): limits is TokenBudgetLimits {
  return limits !== undefined && (limits.perMinute !== undefined || limits.perDay !== undefined)
}

/** One reservation, to settle exactly once. */
export interface Reservation {
  readonly userId: string
  /** The store's id for it (unique per user and window). */
  readonly id: string
  /** Tokens reserved (the estimate). */
  readonly tokens: number
  /** Index of the day it was made on (ms since the epoch / dayMs); a settle after that day leaves the day alone. */
  readonly day: number
  /** Where it is held: it is settled there, whatever the limiter's state by then. */
  readonly source: 'redis' | 'memory'
}

/** The token budgets' part of a decision. */
export interface TokenDecision {
  readonly allowed: boolean
  /** Tokens the request asked to reserve (its estimate). */
  readonly requested: number
  /** Each budget that is on, after this reservation when allowed. */
  readonly budgets: readonly TokenBudgetStatus[]
  /** The budget that refused; undefined when allowed. */
  readonly deniedBy: TokenBudgetStatus | undefined
  /** 0 when allowed; when refused, ms until the reservation could fit (> 0; a whole window when it never can). */
  readonly retryAfterMs: number
}

/**
 * One admission decision: the request limit and the token budgets together.
 * - A token budget refused: `tokens.allowed` false, `request` undefined (the
 *   request was not counted either).
 * - The request limit refused, or is unavailable (failure mode `closed`):
 *   `request.allowed` false; nothing was reserved.
 * - Allowed: `reservation` is what to settle (undefined when no tokens were
 *   reserved: budgets off, or failure mode `open`).
 */
export interface Admission {
  readonly request: RateLimitOutcome | undefined
  /** Undefined when token budgets are off or not applied (failure modes `open` and `closed`). */
  readonly tokens: TokenDecision | undefined
  readonly reservation: Reservation | undefined
}

/** A store-backed admission (Redis or memory): always decides; the Redis one rejects when Redis fails. */
export interface TokenLimiter {
  /** Checks the request limit (when `requestLimit` is on) and reserves `tokens`, atomically. */
  admit: (userId: string, tokens: number) => Promise<Admission & { request: RateLimitResult | undefined }>
  /** Sets the reservation to `usedTokens` in each budget it is still in. */
  settle: (reservation: Reservation, usedTokens: number) => Promise<void>
  /** The budgets now, without reserving anything. */
  budgets: (userId: string) => Promise<TokenBudgetStatus[]>
  close?: () => Promise<void>
}

/** Builds the statuses of the budgets that are on, from the used amounts. */
export function budgetStatuses (
  limits: TokenBudgetLimits,
  minute: { used: number; resetMs: number },
  day: { used: number; resetMs: number }
): TokenBudgetStatus[] {
  const statuses: TokenBudgetStatus[] = []
  if (limits.perMinute !== undefined) statuses.push(status('minute', limits.perMinute, minute.used, minute.used > 0 ? minute.resetMs : 0))
  if (limits.perDay !== undefined) statuses.push(status('day', limits.perDay, day.used, day.resetMs))
  return statuses
}

function status (window: TokenBudgetStatus['window'], limit: number, used: number, resetMs: number): TokenBudgetStatus {
  return { window, limit, used, remaining: Math.max(limit - used, 0), resetMs: Math.max(0, Math.ceil(resetMs)) }
}

/** Checks the budgets' numbers; throws on a programming error (config is validated before). */
export function assertTokenLimits (limits: TokenBudgetLimits): void {
  for (const [name, value] of [['perMinute', limits.perMinute], ['perDay', limits.perDay], ['minuteMs', limits.minuteMs], ['dayMs', limits.dayMs]] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) throw new RangeError(`${name} must be an integer ≥ 1, got ${value}`)
  }
}
