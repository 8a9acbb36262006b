/**
 * The in-memory cache of one gateway instance: an LRU bounded by the total
 * bytes of its keys and entries' wire forms, with per-entry expiry read from
 * the injected clock. Entries are kept in their wire form, so what a caller
 * gets back is always a fresh copy, and the byte count is exact.
 */
import { CACHE_DEFAULTS } from './options.js'
import { assertTtlSeconds, decodeEntry, encodeEntry, type CacheStore, type Clock } from './store.js'

export interface MemoryStoreOptions {
  /** Total bytes of keys and entries kept; the least recently used go first. @default 67108864 (64 MiB) */
  maxBytes?: number
  /** Entries whose wire form is larger are not stored. @default 262144 (256 KiB) */
  maxEntryBytes?: number
  /** @default Date.now */
  clock?: Clock
}

export interface MemoryStore extends CacheStore {
  /** Bytes currently held (keys and wire forms, UTF-8). */
  readonly bytes: number
  /** Entries currently held, expired ones not yet swept included. */
  readonly size: number
  /** Drops every entry. */
  clear: () => void
}

interface Slot {
  text: string
  bytes: number
  expiresAtMs: number
}

export function createMemoryStore (options: MemoryStoreOptions = {}): MemoryStore {
  const maxBytes = options.maxBytes ?? CACHE_DEFAULTS.memoryMaxBytes
  const maxEntryBytes = options.maxEntryBytes ?? CACHE_DEFAULTS.maxEntryBytes
  const clock = options.clock ?? Date.now
  // A Map iterates in insertion order: re-inserting on every read keeps the least recently used first.
  const slots = new Map<string, Slot>()
  let bytes = 0

  const remove = (key: string): void => {
    const slot = slots.get(key)
    if (slot === undefined) return
    slots.delete(key)
    bytes -= slot.bytes
  }

  return {
    get bytes () { return bytes },
    get size () { return slots.size },
    clear () {
      slots.clear()
      bytes = 0
    },
    async get (key) {
      const slot = slots.get(key)
      if (slot === undefined) return undefined
      if (clock() >= slot.expiresAtMs) {
        remove(key)
        return undefined
      }
      slots.delete(key)
      slots.set(key, slot)
      return decodeEntry(slot.text)
    },
    async set (key, entry, ttlSeconds) {
      assertTtlSeconds(ttlSeconds)
      const text = encodeEntry(entry)
      const textBytes = Buffer.byteLength(text, 'utf8')
      const slotBytes = Buffer.byteLength(key, 'utf8') + textBytes
      if (textBytes > maxEntryBytes || slotBytes > maxBytes) return 'too-large'
      remove(key)
      slots.set(key, { text, bytes: slotBytes, expiresAtMs: clock() + ttlSeconds * 1000 })
      bytes += slotBytes
      for (const oldest of slots.keys()) {
        if (bytes <= maxBytes) break
        remove(oldest)
      }
      return 'stored'
    }
  }
}
