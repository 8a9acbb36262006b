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
  /** Users currently tracked (≤ maxUsers). */
  trackedUsers: () => number
  /** Request timestamps currently stored, all users together (≤ maxUsers × limit). */
  storedRequests: () => number
  /** Forgets every window. */
  close: () => Promise<void>
}

/** Expired users dropped per check, at most: enough to keep up, small enough to keep a check O(1). */
const SWEEP_PER_CHECK = 16

export function createMemoryLimiter (options: MemoryLimiterOptions): MemoryLimiter {
  assertLimitOptions(options)
  const { limit, windowMs } = options
  const clock = options.clock ?? monotonicClock
  const maxUsers = options.maxUsers ?? RATE_LIMIT_DEFAULTS.maxUsers
  if (!Number.isInteger(maxUsers) || maxUsers < 1) throw new RangeError(`maxUsers must be an integer ≥ 1, got ${maxUsers}`)

  // key → timestamps of counted requests, ascending. A Map iterates in
  // insertion order; re-inserting on every check keeps the least recently
  // checked user first, which is the one to evict or sweep.
  const windows = new Map<string, number[]>()

  const sweep = (now: number): void => {
    let budget = SWEEP_PER_CHECK
    for (const [key, timestamps] of windows) {
      if (budget-- === 0) return
      const newest = timestamps[timestamps.length - 1]
      if (newest !== undefined && newest > now - windowMs) return
      windows.delete(key)
    }
  }

  const decide = (userId: string): RateLimitResult => {
    const now = clock()
    const key = rateLimitKey(userId)
    const timestamps = windows.get(key) ?? []
    windows.delete(key)
    sweep(now)

    // Same rule as the script: a request at t counts while t > now - window.
    let expired = 0
    while (expired < timestamps.length && timestamps[expired]! <= now - windowMs) expired++
    if (expired > 0) timestamps.splice(0, expired)

    const allowed = timestamps.length < limit
    if (allowed) timestamps.push(now)
    if (timestamps.length > 0) {
      windows.set(key, timestamps)
      if (windows.size > maxUsers) {
        const oldest = windows.keys().next()
        if (oldest.done !== true) windows.delete(oldest.value)
      }
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
    trackedUsers: () => windows.size,
    storedRequests: () => {
      let total = 0
      for (const timestamps of windows.values()) total += timestamps.length
      return total
    },
    close: async () => { windows.clear() }
  }
}
