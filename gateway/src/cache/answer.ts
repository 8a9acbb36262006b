/**
 * From an upstream answer to a stored entry, and from an entry back to an
 * answer for a hit. Only a 200 whose body is a complete generate answer
 * (`{text, usage, meta}`) and no larger than the max entry size is stored:
 * never an error, never a cut-off body. The caller decides when to store;
 * these helpers say whether it may.
 */
import { CACHE_DEFAULTS } from './options.js'
import { isGenerateAnswer, type CacheEntry, type GenerateAnswer } from './store.js'

/** Why an upstream answer is not stored. */
export type NotStorableReason = 'status' | 'too-large' | 'invalid-body'

export type StorableCheck =
  | { storable: true; answer: GenerateAnswer }
  | { storable: false; reason: NotStorableReason }

/** Says whether an upstream answer may be stored, and hands back the parsed answer when it may. */
export function checkStorableAnswer (
  status: number,
  body: Buffer | string,
  maxEntryBytes: number = CACHE_DEFAULTS.maxEntryBytes
): StorableCheck {
  if (status !== 200) return { storable: false, reason: 'status' }
  const bytes = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.length
  if (bytes > maxEntryBytes) return { storable: false, reason: 'too-large' }
  let value: unknown
  try {
    value = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'))
  } catch {
    return { storable: false, reason: 'invalid-body' }
  }
  return isGenerateAnswer(value) ? { storable: true, answer: value } : { storable: false, reason: 'invalid-body' }
}

/** `checkStorableAnswer(...).storable`. */
export function isStorableAnswer (status: number, body: Buffer | string, maxEntryBytes: number = CACHE_DEFAULTS.maxEntryBytes): boolean {
  return checkStorableAnswer(status, body, maxEntryBytes).storable
}

// Fields of `meta` that belong to one request, never to a stored answer.
const PER_REQUEST_META = ['request_id', 'trace_id', 'cached'] as const

/**
 * The entry to store for an answer: the answer without the first request's
 * ids (they must not reach another client) and the time it was stored.
 */
export function createEntry (answer: GenerateAnswer, nowMs: number): CacheEntry {
  const meta = { ...answer.meta }
  for (const field of PER_REQUEST_META) delete meta[field]
  return { answer: { ...answer, meta }, storedAtMs: nowMs }
}

export interface RequestIds {
  request_id: string
  trace_id?: string | undefined
}

/** The answer a hit sends: the stored answer with `meta.cached: true` and this request's ids. */
export function hitAnswer (entry: CacheEntry, ids: RequestIds): GenerateAnswer {
  return withRequestIds(entry.answer, ids, true)
}

/**
 * An answer carrying this request's ids and `meta.cached`. For hits (through
 * hitAnswer), and for a collapsed request, whose shared upstream answer
 * carries the ids of the request that made the call.
 */
export function withRequestIds (answer: GenerateAnswer, ids: RequestIds, cached: boolean): GenerateAnswer {
  const meta: Record<string, unknown> = { ...answer.meta, cached, request_id: ids.request_id }
  if (ids.trace_id !== undefined) meta.trace_id = ids.trace_id
  else delete meta.trace_id
  return { ...answer, meta }
}

/** Whole seconds since the entry was stored, never negative (clocks of replicas may differ slightly). */
export function ageSeconds (entry: CacheEntry, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs - entry.storedAtMs) / 1000))
}
