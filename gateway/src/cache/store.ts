/**
 * The cache store interface, the entry it holds and the entry's wire form.
 * Implementations: redis-store.ts (shared by every gateway instance),
 * memory-store.ts (a bounded LRU in this instance) and failover-store.ts
 * (Redis, falling back to memory while Redis is unreachable or slow). All
 * of them pass one conformance suite (gateway/test/cache/store-conformance.ts).
 */

/** Milliseconds since the epoch, injected so tests control time. */
export type Clock = () => number

/** The upstream's 200 answer to `POST /v1/ai/generate`. */
export interface GenerateAnswer {
  text: string
  usage: Record<string, unknown>
  meta: Record<string, unknown>
  [field: string]: unknown
}

/** What is stored under a key: the upstream's answer and when it was stored. */
export interface CacheEntry {
  /** The answer without the first request's `meta.request_id` / `meta.trace_id`. */
  answer: GenerateAnswer
  /** When the answer was stored (ms since the epoch), for `Age` and the remaining ttl. */
  storedAtMs: number
}

/** Whether `set` stored the entry. */
export type SetOutcome = 'stored' | 'too-large'

export interface CacheStore {
  /**
   * The live entry under `key`, or undefined. Redis and memory stores reject
   * on a store fault (Redis down, timeout); the failover store never rejects.
   */
  get: (key: string) => Promise<CacheEntry | undefined>
  /**
   * Stores `entry` for `ttlSeconds` (a positive integer). An entry whose wire
   * form is over the store's `maxEntryBytes` is not stored: 'too-large'.
   */
  set: (key: string, entry: CacheEntry, ttlSeconds: number) => Promise<SetOutcome>
}

/** The logger calls the cache makes; a pino Logger fits. */
export interface CacheLogger {
  warn: (details: object, message: string) => void
  info: (details: object, message: string) => void
}

/** The entry's wire form, as stored in Redis and in the memory LRU. */
export function encodeEntry (entry: CacheEntry): string {
  return JSON.stringify({ storedAtMs: entry.storedAtMs, answer: entry.answer })
}

/** Parses a wire form; anything that is not a well-formed entry is undefined (read as a miss). */
export function decodeEntry (text: string): CacheEntry | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!isPlainObject(value)) return undefined
  const { storedAtMs, answer } = value
  if (typeof storedAtMs !== 'number' || !Number.isFinite(storedAtMs) || !isGenerateAnswer(answer)) return undefined
  return { storedAtMs, answer }
}

export function isGenerateAnswer (value: unknown): value is GenerateAnswer {
  return isPlainObject(value) && typeof value.text === 'string' && isPlainObject(value.usage) && isPlainObject(value.meta)
}

export function assertTtlSeconds (ttlSeconds: number): void {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new RangeError(`cache ttl must be a positive integer number of seconds, not ${ttlSeconds}`)
  }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
