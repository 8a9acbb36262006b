/**
 * Redis first, this instance's memory while Redis is unreachable or slow.
 *
 * A cache fault must never fail a request nor slow it beyond the Redis
 * timeout: it only turns hits into misses. Every Redis call is raced against
 * `timeoutMs` (the client has its own command timeout too; this bound holds
 * whatever client is injected). The first failure or timeout switches the
 * store to memory, with one warning. While on memory, Redis is not on the
 * request path at all: a PING probe runs in the background, at most once per
 * `probeIntervalMs`, started by the traffic itself (no timers to clean up).
 * When a probe succeeds the store goes back to Redis, with one info line, and
 * drops what it kept in memory (Redis is the one shared truth; an operator
 * who flushed it must not see old answers come back at the next outage).
 */
import type { MemoryStore } from './memory-store.js'
import type { RedisStore } from './redis-store.js'
import { CACHE_DEFAULTS } from './options.js'
import { assertTtlSeconds, type CacheEntry, type CacheLogger, type CacheStore, type Clock, type SetOutcome } from './store.js'

export type FailoverMode = 'redis' | 'memory'

export interface FailoverStoreOptions {
  /** The shared store; its `ping` is the recovery probe. */
  primary: Pick<RedisStore, 'get' | 'set' | 'ping'>
  /** This instance's fallback. */
  fallback: MemoryStore
  /** Longest a Redis call may take before it counts as a failure (AI_ENGINE_REDIS_TIMEOUT_MS). @default 100 */
  timeoutMs?: number
  /** Least time between two recovery probes while on memory. @default 1000 */
  probeIntervalMs?: number
  /** @default Date.now */
  clock?: Clock
  logger: CacheLogger
  /**
   * True when another user of the same Redis (the rate limiter) has just found
   * it unavailable: the store then switches to memory without paying its own
   * timeout first, so a request that met a frozen Redis in the limiter does
   * not wait for it a second time here. @default undefined (never)
   */
  redisKnownDown?: (() => boolean) | undefined
  /** Told of each failed Redis call (an error or the deadline), for the Redis error metric. @default undefined */
  onRedisError?: ((error: unknown) => void) | undefined
}

export interface FailoverStore extends CacheStore {
  /** Where reads and writes go now. */
  readonly mode: FailoverMode
}

class RedisTimeoutError extends Error {
  readonly code = 'CACHE_REDIS_TIMEOUT'
  constructor (timeoutMs: number) {
    super(`Redis did not answer within ${timeoutMs} ms`)
    this.name = 'RedisTimeoutError'
  }
}

export function createFailoverStore (options: FailoverStoreOptions): FailoverStore {
  const { primary, fallback, logger } = options
  const timeoutMs = options.timeoutMs ?? CACHE_DEFAULTS.redisTimeoutMs
  const probeIntervalMs = options.probeIntervalMs ?? 1000
  const clock = options.clock ?? Date.now
  let mode: FailoverMode = 'redis'
  let lastProbeAtMs = 0
  let probing = false

  const bounded = async <T>(operation: () => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined
    const call = operation()
    // The call may still settle after the timeout: never leave its rejection unhandled.
    call.catch(() => {})
    try {
      return await Promise.race([
        call,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new RedisTimeoutError(timeoutMs)), timeoutMs)
        })
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  const toMemory = (error: unknown): void => {
    // Concurrent calls fail together: switch and warn once.
    if (mode === 'memory') return
    mode = 'memory'
    lastProbeAtMs = clock()
    logger.warn(
      { event: 'cache_fallback_memory', err: { name: (error as Error)?.name, message: (error as Error)?.message, code: (error as { code?: unknown })?.code } },
      'Redis is unreachable or slow: the cache uses this instance\'s memory until it is back'
    )
  }

  const maybeProbe = (): void => {
    if (probing || clock() - lastProbeAtMs < probeIntervalMs) return
    probing = true
    lastProbeAtMs = clock()
    bounded(async () => { await primary.ping() }).then(() => {
      // Not while the limiter still finds Redis unavailable: the next request would switch straight back.
      if (mode === 'memory' && options.redisKnownDown?.() !== true) {
        mode = 'redis'
        fallback.clear()
        logger.info({ event: 'cache_redis_back' }, 'Redis is back: the cache uses Redis again')
      }
    }, () => {}).finally(() => { probing = false })
  }

  return {
    get mode () { return mode },
    async get (key: string): Promise<CacheEntry | undefined> {
      if (mode === 'redis' && options.redisKnownDown?.() === true) toMemory(new Error('the rate limiter found Redis unavailable'))
      if (mode === 'redis') {
        try {
          return await bounded(() => primary.get(key))
        } catch (error) {
          options.onRedisError?.(error)
          toMemory(error)
        }
      } else {
        maybeProbe()
      }
      return await fallback.get(key)
    },
    async set (key: string, entry: CacheEntry, ttlSeconds: number): Promise<SetOutcome> {
      // A bad ttl is a wiring bug, not a Redis fault: let it surface.
      assertTtlSeconds(ttlSeconds)
      if (mode === 'redis' && options.redisKnownDown?.() === true) toMemory(new Error('the rate limiter found Redis unavailable'))
      if (mode === 'redis') {
        try {
          return await bounded(() => primary.set(key, entry, ttlSeconds))
        } catch (error) {
          options.onRedisError?.(error)
          toMemory(error)
        }
      } else {
        maybeProbe()
      }
      return await fallback.set(key, entry, ttlSeconds)
    }
  }
}
