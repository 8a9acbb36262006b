/**
 * The in-memory admission with token budgets: the same rules as
 * ADMIT_SCRIPT and SETTLE_SCRIPT, for one process. Used when REDIS_URL is
 * unset and as the `memory` fallback while Redis is unavailable.
 *
 * The decision is synchronous (the request limiter's checkNow included), so
 * no other request can slip in between the token check and the request
 * count: all or nothing, as in Redis. The minute window runs on the
 * injected monotonic clock; the day on the wall clock (the UTC calendar
 * day). Memory is bounded: at most `maxUsers` users (the least recently
 * seen is forgotten first, its budgets starting over), each holding only
 * the reservations still in its minute window.
 */
import { rateLimitKey } from './keys.js'
import { monotonicClock, RATE_LIMIT_DEFAULTS, type Clock } from './limiter.js'
import type { MemoryLimiter } from './memory-limiter.js'
import {
  assertTokenLimits, budgetStatuses, TOKEN_BUDGET_DEFAULTS,
  type Admission, type TokenBudgetLimits, type TokenBudgetStatus, type TokenLimiter
} from './token-budget.js'

export interface MemoryTokenLimiterOptions {
  /** The token budgets (at least one on). */
  tokens: TokenBudgetLimits
  /** The in-memory request limiter, checked in the same step; undefined: no request limit. */
  requests: MemoryLimiter | undefined
  /** Milliseconds, monotonic: the minute window. @default monotonicClock */
  clock?: Clock
  /** Milliseconds since the epoch: which day it is. @default Date.now */
  wallClock?: Clock
  /** Most users tracked at once. @default 10000 */
  maxUsers?: number
}

export interface MemoryTokenLimiter extends TokenLimiter {
  /** Users currently tracked (≤ maxUsers). */
  trackedUsers: () => number
  close: () => Promise<void>
}

interface MinuteReservation {
  readonly id: string
  readonly at: number
  tokens: number
}

interface UserBudget {
  /** The minute's reservations, oldest first. */
  readonly minute: MinuteReservation[]
  day: number
  dayUsed: number
}

/** Idle users dropped per decision, at most. */
const SWEEP_PER_CHECK = 16

export function createMemoryTokenLimiter (options: MemoryTokenLimiterOptions): MemoryTokenLimiter {
  const limits = options.tokens
  assertTokenLimits(limits)
  const clock = options.clock ?? monotonicClock
  const wallClock = options.wallClock ?? Date.now
  const maxUsers = options.maxUsers ?? RATE_LIMIT_DEFAULTS.maxUsers
  const minuteMs = limits.minuteMs ?? TOKEN_BUDGET_DEFAULTS.minuteMs
  const dayMs = limits.dayMs ?? TOKEN_BUDGET_DEFAULTS.dayMs
  // Insertion order is recency order (a user is re-inserted when seen): the first is the one to evict.
  const users = new Map<string, UserBudget>()
  let nextId = 0

  const expire = (budget: UserBudget, now: number, today: number): void => {
    let expired = 0
    while (expired < budget.minute.length && budget.minute[expired]!.at <= now - minuteMs) expired++
    if (expired > 0) budget.minute.splice(0, expired)
    if (budget.day !== today) {
      budget.day = today
      budget.dayUsed = 0
    }
  }

  const idle = (budget: UserBudget): boolean => budget.minute.length === 0 && budget.dayUsed === 0

  const sweep = (now: number, today: number): void => {
    let count = 0
    for (const [key, budget] of users) {
      if (count++ >= SWEEP_PER_CHECK) return
      expire(budget, now, today)
      if (!idle(budget)) return
      users.delete(key)
    }
  }

  /** The user's budget, brought up to date and made most recent. */
  const touch = (userId: string, now: number, today: number): { key: string; budget: UserBudget } => {
    const key = rateLimitKey(userId)
    const budget = users.get(key) ?? { minute: [], day: today, dayUsed: 0 }
    users.delete(key)
    sweep(now, today)
    expire(budget, now, today)
    users.set(key, budget)
    if (users.size > maxUsers) users.delete(users.keys().next().value!)
    return { key, budget }
  }

  const statuses = (budget: UserBudget, now: number, wall: number, today: number): TokenBudgetStatus[] => {
    const oldest = budget.minute[0]
    return budgetStatuses(
      limits,
      { used: budget.minute.reduce((sum, entry) => sum + entry.tokens, 0), resetMs: oldest === undefined ? 0 : Math.max(oldest.at + minuteMs - now, 1) },
      { used: budget.dayUsed, resetMs: (today + 1) * dayMs - wall }
    )
  }

  /** Ms until enough of the minute's reservations leave the window for `need` to fit; a whole window when it never can. */
  const minuteWait = (budget: UserBudget, used: number, need: number, now: number): number => {
    let freed = 0
    for (const entry of budget.minute) {
      freed += entry.tokens
      if (used - freed + need <= limits.perMinute!) return Math.max(Math.ceil(entry.at + minuteMs - now), 1)
    }
    return minuteMs
  }

  const admitNow = (userId: string, need: number): Admission & { request: ReturnType<MemoryLimiter['checkNow']> | undefined } => {
    const now = clock()
    const wall = wallClock()
    const today = Math.floor(wall / dayMs)
    const { key, budget } = touch(userId, now, today)
    const before = statuses(budget, now, wall, today)
    const minute = before.find((status) => status.window === 'minute')
    const day = before.find((status) => status.window === 'day')
    const refusedBy = minute !== undefined && minute.used + need > minute.limit
      ? minute
      : day !== undefined && day.used + need > day.limit ? day : undefined
    if (refusedBy !== undefined) {
      if (idle(budget)) users.delete(key)
      return {
        request: undefined,
        tokens: {
          allowed: false,
          requested: need,
          budgets: before,
          deniedBy: refusedBy,
          retryAfterMs: refusedBy.window === 'minute' ? minuteWait(budget, refusedBy.used, need, now) : Math.max(refusedBy.resetMs, 1)
        },
        reservation: undefined
      }
    }
    const request = options.requests?.checkNow(userId)
    if (request !== undefined && !request.allowed) {
      if (idle(budget)) users.delete(key)
      return { request, tokens: { allowed: true, requested: need, budgets: before, deniedBy: undefined, retryAfterMs: 0 }, reservation: undefined }
    }
    const id = String(nextId++)
    if (limits.perMinute !== undefined) budget.minute.push({ id, at: now, tokens: need })
    if (limits.perDay !== undefined) budget.dayUsed += need
    return {
      request: request ?? { allowed: true, limit: 0, remaining: 0, resetMs: 0, retryAfterMs: 0, source: 'none' },
      tokens: { allowed: true, requested: need, budgets: statuses(budget, now, wall, today), deniedBy: undefined, retryAfterMs: 0 },
      reservation: { userId, id, tokens: need, day: today, source: 'memory' }
    }
  }

  return {
    admit: async (userId, need) => admitNow(userId, need),
    async settle (reservation, usedTokens) {
      const used = Math.max(0, Math.round(usedTokens))
      const budget = users.get(rateLimitKey(reservation.userId))
      if (budget === undefined) return
      const index = budget.minute.findIndex((entry) => entry.id === reservation.id)
      if (index !== -1) {
        // Nothing used: the reservation frees its place in the window at once.
        if (used === 0) budget.minute.splice(index, 1)
        else budget.minute[index]!.tokens = used
      }
      if (limits.perDay !== undefined && budget.day === reservation.day) budget.dayUsed = Math.max(budget.dayUsed - reservation.tokens + used, 0)
    },
    async budgets (userId) {
      const now = clock()
      const wall = wallClock()
      const today = Math.floor(wall / dayMs)
      const budget = users.get(rateLimitKey(userId))
      if (budget === undefined) return statuses({ minute: [], day: today, dayUsed: 0 }, now, wall, today)
      expire(budget, now, today)
      return statuses(budget, now, wall, today)
    },
    trackedUsers: () => users.size,
    close: async () => { users.clear() }
  }
}
