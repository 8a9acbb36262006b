/**
 * The cache's settings: typed options with their defaults, and the rows the
 * gateway's config table takes for them (env name, default, parser). The
 * gateway reads them once at start (gateway/src/config.ts) and hands the
 * values to the cache modules; nothing here reads the environment.
 */
import { boolean, integer, oneOf, string, type SettingsTable } from '../../../common/src/config.js'
import { CACHE_NAMESPACE_PATTERN, type CacheScope } from './key.js'

export interface CacheOptions {
  /** Whether `POST /v1/ai/generate` answers are cached at all (`AI_ENGINE_CACHE_ENABLED`). @default false */
  enabled: boolean
  /** How long a stored answer is served, in seconds (`AI_ENGINE_CACHE_TTL_SECONDS`). @default 3600 */
  ttlSeconds: number
  /** Answers larger than this many bytes are not stored (`AI_ENGINE_CACHE_MAX_ENTRY_BYTES`). @default 262144 (256 KiB) */
  maxEntryBytes: number
  /** Part of every key; changing it invalidates every stored answer (`AI_ENGINE_CACHE_NAMESPACE`). @default 'v1' */
  namespace: string
  /** `global`: users share answers; `user`: the user id joins the key (`AI_ENGINE_CACHE_SCOPE`). @default 'global' */
  scope: CacheScope
  /** Byte budget of the in-memory LRU used while Redis is unreachable (`AI_ENGINE_CACHE_MEMORY_MAX_BYTES`). @default 67108864 (64 MiB) */
  memoryMaxBytes: number
  /** Longest a Redis command may take before the cache falls back to memory (`AI_ENGINE_REDIS_TIMEOUT_MS`). @default 100 */
  redisTimeoutMs: number
}

export const CACHE_DEFAULTS: Readonly<CacheOptions> = Object.freeze({
  enabled: false,
  ttlSeconds: 3600,
  maxEntryBytes: 256 * 1024,
  namespace: 'v1',
  scope: 'global',
  memoryMaxBytes: 64 * 1024 * 1024,
  redisTimeoutMs: 100
})

/**
 * The cache's rows for the gateway's one config table (spread them in).
 * `AI_ENGINE_REDIS_TIMEOUT_MS` is not here: Redis is shared with the rate
 * limiter, so its row belongs with the Redis settings; the cache only takes
 * the value (`redisTimeoutMs`).
 */
export const CACHE_SETTINGS = {
  cacheEnabled: {
    env: 'AI_ENGINE_CACHE_ENABLED',
    default: CACHE_DEFAULTS.enabled,
    parse: boolean(),
    description: 'Cache deterministic `POST /v1/ai/generate` answers (temperature 0); see docs/caching.md.'
  },
  cacheTtlSeconds: {
    env: 'AI_ENGINE_CACHE_TTL_SECONDS',
    default: CACHE_DEFAULTS.ttlSeconds,
    parse: integer({ min: 1, max: 30 * 24 * 3600 }),
    description: 'How long a cached answer is served, in seconds.'
  },
  cacheMaxEntryBytes: {
    env: 'AI_ENGINE_CACHE_MAX_ENTRY_BYTES',
    default: CACHE_DEFAULTS.maxEntryBytes,
    parse: integer({ min: 1024, max: 64 * 1024 * 1024 }),
    description: 'Answers larger than this many bytes are not cached.'
  },
  cacheNamespace: {
    env: 'AI_ENGINE_CACHE_NAMESPACE',
    default: CACHE_DEFAULTS.namespace,
    parse: string({ pattern: CACHE_NAMESPACE_PATTERN, what: '1 to 64 characters among A-Z a-z 0-9 . _ -' }),
    description: 'Part of every cache key; change it to invalidate every cached answer.'
  },
  cacheScope: {
    env: 'AI_ENGINE_CACHE_SCOPE',
    default: CACHE_DEFAULTS.scope,
    parse: oneOf(['global', 'user']),
    description: '`global`: identical requests share an answer across users; `user`: the user id joins the key.'
  },
  cacheMemoryMaxBytes: {
    env: 'AI_ENGINE_CACHE_MEMORY_MAX_BYTES',
    default: CACHE_DEFAULTS.memoryMaxBytes,
    parse: integer({ min: 1024 * 1024 }),
    description: 'Byte budget of the in-memory cache used while Redis is unreachable.'
  }
} satisfies SettingsTable
