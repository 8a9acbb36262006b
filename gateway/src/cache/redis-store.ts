/**
 * The shared cache in Redis: `GET key` and `SET key value EX ttl`, the value
 * being the entry's wire form (store.ts#encodeEntry). Expiry is Redis's.
 * Faults (Redis down, a command timeout, a write refused) reject:
 * failover-store.ts turns them into the in-memory fallback. A read that
 * Redis answers with an error about the key itself is a miss. The client is injected and owned by the caller.
 */
import { pingEveryShard, type RedisClient } from '../redis.js'
import { CACHE_DEFAULTS } from './options.js'
import { assertTtlSeconds, decodeEntry, encodeEntry, type CacheStore } from './store.js'

export interface RedisStoreOptions {
  /** A connected client (one Redis or a Cluster), created with the hot-path options (no offline queue, a command timeout). */
  redis: RedisClient
  /** Entries whose wire form is larger are not stored. @default 262144 (256 KiB) */
  maxEntryBytes?: number
}

export interface RedisStore extends CacheStore {
  /** Resolves when Redis answers PING (on a Cluster, when every master answers); the failover store's recovery probe. */
  ping: () => Promise<void>
}

export function createRedisStore (options: RedisStoreOptions): RedisStore {
  const { redis } = options
  const maxEntryBytes = options.maxEntryBytes ?? CACHE_DEFAULTS.maxEntryBytes
  return {
    async get (key) {
      let text: string | null
      try {
        text = await redis.get(key)
      } catch (error) {
        // Redis answered, with an error about this key (WRONGTYPE: another writer's value): a miss, not an outage.
        if ((error as Error).name === 'ReplyError') return undefined
        throw error
      }
      // A value that is not a well-formed entry (another writer, an old format) is a miss.
      return text === null ? undefined : decodeEntry(text)
    },
    async set (key, entry, ttlSeconds) {
      assertTtlSeconds(ttlSeconds)
      const text = encodeEntry(entry)
      if (Buffer.byteLength(text, 'utf8') > maxEntryBytes) return 'too-large'
      await redis.set(key, text, 'EX', ttlSeconds)
      return 'stored'
    },
    async ping () {
      await pingEveryShard(redis)
    }
  }
}
