/**
 * The in-memory sliding-window limiter: the same algorithm as the Redis
 * script, on an injected clock, for one process. Used when REDIS_URL is unset
 * and as the fallback while Redis is unavailable.
 *
 * Memory is bounded: at most `maxUsers` users are tracked (the least recently
 * checked is evicted first, which restarts that user's window), each with at
 * most `limit` timestamps; users whose window emptied are dropped as checks
 * go by. Users are keyed like in Redis (keys.ts), so a 4 KB user id costs a
 * 64-character hash, not 4 KB.
 */
import { rateLimitKey } from './keys.js'
import { assertLimitOptions, monotonicClock, RATE_LIMIT_DEFAULTS, type Clock, type RateLimiter, type RateLimitResult } from './limiter.js'

export interface MemoryLimiterOptions {
  /** Requests allowed per window (AI_ENGINE_RATE_LIMIT_PER_MIN; the gateway's default is 30). */
  limit: number
  /** Window length in milliseconds (AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS × 1000; the gateway's default is 60000). */
  windowMs: number
  /** Milliseconds, monotonic. @default monotonicClock (performance.now) */
  clock?: Clock
  /** Most users tracked at once; beyond it the least recently checked is forgotten. @default 10000 */
  maxUsers?: number
}

export interface MemoryLimiter extends RateLimiter {
  /** check(), synchronously: lets the token budgets decide in the same turn (memory-token-limiter.ts). */
  checkNow: (userId: string) => RateLimitResult
  /** Users currently tracked (≤ maxUsers). */
  trackedUsers: () => number
  /** Request timestamps currently stored, all users together (≤ maxUsers × limit). */
  storedRequests: () => number
  /** Forgets every window. */
  close: () => Promise<void>
}

/** One tracked user: their counted requests' timestamps, ascending, and their place in the recency list. */
interface UserWindow {
  readonly key: string
  readonly timestamps: number[]
  /** Checked less recently; undefined for the least recent. */
  older: UserWindow | undefined
  /** Checked more recently; undefined for the most recent. */
  newer: UserWindow | undefined
}

/** Expired users dropped per check, at most: enough to keep up, small enough to keep a check O(1). */
const SWEEP_PER_CHECK = 16

export function createMemoryLimiter (options: MemoryLimiterOptions): MemoryLimiter {
  assertLimitOptions(options)
  const { limit, windowMs } = options
  const clock = options.clock ?? monotonicClock
  const maxUsers = options.maxUsers ?? RATE_LIMIT_DEFAULTS.maxUsers
  if (!Number.isInteger(maxUsers) || maxUsers < 1) throw new RangeError(`maxUsers must be an integer ≥ 1, got ${maxUsers}`)

  // key → the user's window. The map changes only when a user comes or goes;
  // recency is a doubly linked list through the windows (least recently
  // checked first: the one to evict or sweep). Re-inserting each user into
  // the map on every check (delete + set, to keep insertion order as the
  // recency order) churned the map's table on every request, and the GC kept
  // the discarded tables' young entries alive (see ../in-flight.ts).
  const windows = new Map<string, UserWindow>()
  let leastRecent: UserWindow | undefined
  let mostRecent: UserWindow | undefined

  const unlink = (window: UserWindow): void => {
    if (window.older === undefined) leastRecent = window.newer
    else window.older.newer = window.newer
    if (window.newer === undefined) mostRecent = window.older
    else window.newer.older = window.older
    window.older = undefined
    window.newer = undefined
  }

  const append = (window: UserWindow): void => {
    window.older = mostRecent
    if (mostRecent === undefined) leastRecent = window
    else mostRecent.newer = window
    mostRecent = window
  }

  const drop = (window: UserWindow): void => {
    unlink(window)
    windows.delete(window.key)
  }

  const sweep = (now: number): void => {
    let budget = SWEEP_PER_CHECK
    for (let window = leastRecent; window !== undefined && budget-- > 0; window = leastRecent) {
      const newest = window.timestamps[window.timestamps.length - 1]
      if (newest !== undefined && newest > now - windowMs) return
      drop(window)
    }
  }

  const decide = (userId: string): RateLimitResult => {
    const now = clock()
    const key = rateLimitKey(userId)
    let window = windows.get(key)
    // Out of the recency list while deciding: the sweep never drops the user being checked.
    if (window !== undefined) unlink(window)
    sweep(now)
    const timestamps = window?.timestamps ?? []

    // Same rule as the script: a request at t counts while t > now - window.
    let expired = 0
    while (expired < timestamps.length && timestamps[expired]! <= now - windowMs) expired++
    if (expired > 0) timestamps.splice(0, expired)

    const allowed = timestamps.length < limit
    if (allowed) timestamps.push(now)
    if (timestamps.length > 0) {
      if (window === undefined) {
        window = { key, timestamps, older: undefined, newer: undefined }
        windows.set(key, window)
      }
      append(window)
      if (windows.size > maxUsers && leastRecent !== undefined) drop(leastRecent)
    } else if (window !== undefined) {
      windows.delete(key)
    }

    const oldest = timestamps[0]
    const resetMs = oldest === undefined
      ? windowMs
      : Math.min(Math.max(Math.ceil(oldest + windowMs - now), 1), windowMs)
    return {
      allowed,
      limit,
      remaining: Math.max(limit - timestamps.length, 0),
      resetMs,
      retryAfterMs: allowed ? 0 : resetMs,
      source: 'memory'
    }
  }

  return {
    check: async (userId) => decide(userId),
    checkNow: decide,
    trackedUsers: () => windows.size,
    storedRequests: () => {
      let total = 0
      for (const window of windows.values()) total += window.timestamps.length
      return total
    },
    close: async () => {
      windows.clear()
      leastRecent = undefined
      mostRecent = undefined
    }
  }
}
