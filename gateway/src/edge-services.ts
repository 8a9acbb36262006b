/**
 * The rate limiter and the response cache, built from the configuration
 * around the process's one Redis client, with the two pipeline stages that
 * use them, what health and metrics read from them, and how they close.
 * main.ts calls it once and wires the result; nothing here listens or reads
 * the environment.
 *
 * Redis: one client per process (createRedisClient, or createRedisClusterClient
 * for REDIS_CLUSTER_NODES), shared by the limiter and the cache, created only
 * when one of the two is set and something uses it.
 * Without REDIS_URL both keep their state in this instance's memory, and
 * start-up says so.
 */
import type { Dispatcher } from 'undici'
import type { Logger } from '../../common/src/logger.js'
import { createCoalescer, type Coalescer } from './cache/coalesce.js'
import { createFailoverStore, type FailoverMode } from './cache/failover-store.js'
import { createCacheKey } from './cache/key.js'
import { createMemoryStore, type MemoryStore } from './cache/memory-store.js'
import { createRedisStore } from './cache/redis-store.js'
import type { GatewayConfig } from './config.js'
import { createCacheStage, type UpstreamAnswer } from './pipeline/cache.js'
import { createRateLimitStage, type RateLimitStage } from './pipeline/rate-limit.js'
import type { NamedStage } from './pipeline/stage.js'
import { createRateLimiter, TOKEN_BUDGET_DEFAULTS, type ConfiguredRateLimiter, type RateLimiterState } from './ratelimit/index.js'
import type { TokenBudgetReader } from './ratelimit/token-budget.js'
import {
  closeRedisClient, createRedisClient, createRedisClusterClient, createRedisSentinelClient, describeClusterTarget, describeSentinelTarget,
  redactRedisUrl, type RedisClient
} from './redis.js'
import type { Closer } from './shutdown.js'
import type { UpstreamGate } from './upstream-gate.js'

export interface EdgeServicesOptions {
  config: GatewayConfig
  logger: Logger
  /** A keep-alive undici pool to upstream-ai, for the cache's own upstream calls. */
  upstream: Dispatcher
  /** The cap on concurrent upstream calls, shared with the proxy stage (upstream-gate.ts). @default undefined (no cap) */
  upstreamGate?: UpstreamGate | undefined
  /** Monotonic clock, in ms. */
  now: () => number
  /** Told of each failed Redis call of the rate limiter or the cache (for ai_gateway_redis_errors_total). @default undefined */
  onRedisError?: ((source: 'rate_limiter' | 'cache') => void) | undefined
}

/** What health and metrics read, cheaply, at any time. */
export interface EdgeState {
  /** `none` without REDIS_URL or REDIS_CLUSTER_NODES (or nothing using it); otherwise ioredis's status (`ready`, `connecting`, `reconnecting`, `end`, …). */
  redis: 'none' | RedisClient['status']
  /** `disabled`, `memory` (no Redis), `redis`, or `fallback` (Redis configured but unavailable: the failure mode answers). */
  rateLimiter: RateLimiterState
  cache: {
    /** `disabled`; `redis` (the shared store); `memory` (no Redis configured, or Redis unavailable: this instance's LRU). */
    store: 'disabled' | FailoverMode
    /** Keys with a coalesced upstream call running now. */
    inFlight: number
    /** Entries and bytes in this instance's memory store (the fallback, or the only store without Redis). */
    memoryEntries: number
    memoryBytes: number
  }
}

export interface EdgeServices {
  /** The shared client (one Redis, or a Cluster), for health probes (pingRedis); undefined without REDIS_URL or REDIS_CLUSTER_NODES. */
  redis: RedisClient | undefined
  rateLimiter: ConfiguredRateLimiter
  /** The callers' token budgets now, for GET /v1/ai/usage (an empty array when token budgets are off). */
  tokenBudgets: TokenBudgetReader
  /** For buildPipeline; undefined when the feature is off. */
  stages: { rateLimit: RateLimitStage | undefined; cache: NamedStage | undefined }
  state: () => EdgeState
  /** For shutdown, in order: the limiter (its probe timer), then the Redis client. */
  closers: Closer[]
}

export function createEdgeServices (options: EdgeServicesOptions): EdgeServices {
  const { config, logger } = options
  const windowMs = config.rateLimitWindowSeconds * 1000
  const tokenBudgetsOn = config.tokenLimitPerMinute !== undefined || config.tokenLimitPerDay !== undefined
  const used = config.rateLimitEnabled || tokenBudgetsOn || config.cacheEnabled
  const redisUrl = config.redisUrl !== undefined && used ? config.redisUrl : undefined
  // loadConfig refuses more than one of REDIS_URL, REDIS_CLUSTER_NODES and REDIS_SENTINELS (with REDIS_SENTINEL_MASTER).
  const clusterTarget = config.redisClusterNodes !== undefined && used ? config.redisClusterNodes : undefined
  const sentinels = config.redisSentinels !== undefined && config.redisSentinelMaster !== undefined && used
    ? { nodes: config.redisSentinels, masterName: config.redisSentinelMaster }
    : undefined
  const redis: RedisClient | undefined = clusterTarget !== undefined
    ? createRedisClusterClient({ target: clusterTarget, commandTimeoutMs: config.redisTimeoutMs, logger })
    : sentinels !== undefined
      ? createRedisSentinelClient({ sentinels: sentinels.nodes, masterName: sentinels.masterName, sentinelPassword: config.redisSentinelPassword, commandTimeoutMs: config.redisTimeoutMs, logger })
      : redisUrl === undefined
        ? undefined
        : createRedisClient({ url: redisUrl, commandTimeoutMs: config.redisTimeoutMs, logger })
  if (redis !== undefined) {
    const users = [config.rateLimitEnabled || tokenBudgetsOn ? 'rate limiter' : undefined, config.cacheEnabled ? 'cache' : undefined].filter((user) => user !== undefined)
    const where = clusterTarget !== undefined
      ? describeClusterTarget(clusterTarget)
      : sentinels !== undefined ? describeSentinelTarget(sentinels.nodes, sentinels.masterName) : redactRedisUrl(redisUrl!)
    logger.info({ redis: where, timeout_ms: config.redisTimeoutMs, for: users }, 'using Redis')
  } else if (used) {
    logger.info('REDIS_URL is unset: the rate limiter and the cache use in-memory stores, per instance')
  }

  const rateLimiter = createRateLimiter({
    enabled: config.rateLimitEnabled,
    limit: config.rateLimitPerWindow,
    windowMs,
    redis,
    failureMode: config.rateLimitFailureMode,
    redisTimeoutMs: config.redisTimeoutMs,
    tokens: { perMinute: config.tokenLimitPerMinute, perDay: config.tokenLimitPerDay },
    onRedisError: () => { options.onRedisError?.('rate_limiter') },
    logger
  })
  logger.info({
    enabled: config.rateLimitEnabled,
    limit: config.rateLimitPerWindow,
    window_seconds: config.rateLimitWindowSeconds,
    store: rateLimiter.state(),
    failure_mode: config.rateLimitFailureMode,
    token_limit_per_min: config.tokenLimitPerMinute ?? null,
    token_limit_per_day: config.tokenLimitPerDay ?? null,
    ...(tokenBudgetsOn ? { token_estimate_default_max_tokens: config.tokenEstimateDefaultMaxTokens } : {})
  }, 'rate limiting')

  let memory: MemoryStore | undefined
  let storeMode: () => EdgeState['cache']['store'] = () => 'disabled'
  let coalescer: Coalescer<UpstreamAnswer> | undefined
  let cacheStage: NamedStage | undefined
  if (config.cacheEnabled) {
    const fallback = createMemoryStore({ maxBytes: config.cacheMemoryMaxBytes, maxEntryBytes: config.cacheMaxEntryBytes })
    memory = fallback
    const failover = redis === undefined
      ? undefined
      : createFailoverStore({
        primary: createRedisStore({ redis, maxEntryBytes: config.cacheMaxEntryBytes }),
        fallback,
        timeoutMs: config.redisTimeoutMs,
        // The limiter runs first on each request: once it has met a dead or frozen Redis, the cache does not wait for it again.
        redisKnownDown: () => rateLimiter.state() === 'fallback',
        onRedisError: () => { options.onRedisError?.('cache') },
        logger
      })
    const store = failover ?? fallback
    storeMode = () => failover?.mode ?? 'memory'
    coalescer = createCoalescer<UpstreamAnswer>()
    cacheStage = createCacheStage({
      store,
      key: createCacheKey({ namespace: config.cacheNamespace, scope: config.cacheScope }),
      coalescer,
      ttlSeconds: config.cacheTtlSeconds,
      maxEntryBytes: config.cacheMaxEntryBytes,
      upstreamUrl: config.upstreamUrl,
      dispatcher: options.upstream,
      engineTimeoutMs: config.engineTimeoutSeconds * 1000,
      trustedUserHeader: config.trustedUserHeader,
      gate: options.upstreamGate,
      now: options.now,
      logger
    })
  }
  logger.info({
    enabled: config.cacheEnabled,
    ...(config.cacheEnabled
      ? { store: storeMode(), scope: config.cacheScope, ttl_seconds: config.cacheTtlSeconds, namespace: config.cacheNamespace }
      : {})
  }, 'response cache')

  const closers: Closer[] = [{ name: 'rate-limiter', close: async () => { await rateLimiter.close() } }]
  if (redis !== undefined) closers.push({ name: 'redis', close: async () => { await closeRedisClient(redis) } })

  return {
    redis,
    rateLimiter,
    tokenBudgets: { tokenBudgets: rateLimiter.tokenBudgets },
    stages: {
      // Disabled (no request limit, no token budgets): no stage at all (no check, no headers).
      rateLimit: config.rateLimitEnabled || tokenBudgetsOn
        ? createRateLimitStage({
          limiter: rateLimiter,
          windowMs,
          tokens: tokenBudgetsOn
            ? { defaultMaxTokens: config.tokenEstimateDefaultMaxTokens, minuteMs: TOKEN_BUDGET_DEFAULTS.minuteMs, dayMs: TOKEN_BUDGET_DEFAULTS.dayMs }
            : undefined
        })
        : undefined,
      cache: cacheStage
    },
    state: () => ({
      redis: redis === undefined ? 'none' : redis.status,
      rateLimiter: rateLimiter.state(),
      cache: {
        store: storeMode(),
        inFlight: coalescer?.inFlight ?? 0,
        memoryEntries: memory?.size ?? 0,
        memoryBytes: memory?.bytes ?? 0
      }
    }),
    closers
  }
}
