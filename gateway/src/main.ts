/**
 * The gateway process: wiring only. config → logger → upstream clients →
 * pipeline → server → listen → signals. Configured by environment variables
 * alone (docs/configuration.md); a bad value stops start-up with a message
 * naming the variable.
 */
import { Agent } from 'node:http'
import { performance } from 'node:perf_hooks'
import { Pool } from 'undici'
import { ConfigError } from '../../common/src/config.js'
import { createLogger } from '../../common/src/logger.js'
import { createSanitizer, describeError } from '../../common/src/sanitize.js'
import { loadConfig, type GatewayConfig } from './config.js'
import { createEdgeServices } from './edge-services.js'
import { createHealth } from './health.js'
import { createMetrics, createMetricsServer } from './metrics.js'
import { createCompletionLog } from './pipeline/completion-log.js'
import { createBodyStage } from './pipeline/body.js'
import { createIdentityStage, importHs256Key } from './pipeline/identity.js'
import { buildPipeline } from './pipeline/index.js'
import { createProxyStage } from './pipeline/proxy.js'
import { createPostgresProbe } from './probes/postgres.js'
import { createRedisProbe } from './probes/redis.js'
import { createUpstreamProbe } from './probes/upstream.js'
import { buildServer } from './server.js'
import { Drain, handleSignals, shutdown, type Closer } from './shutdown.js'
import { createUpstreamGate } from './upstream-gate.js'
import { createUsageRoute } from './usage/route.js'
import { createUsageServices } from './usage/services.js'

/** Least time the usage ledger gets to write what is left at shutdown, even when draining used the whole grace period. */
const USAGE_FLUSH_MIN_MS = 2000

/** Idle pooled sockets to upstream-ai are closed after this (below Node's 5 s server default, so we close first). */
const UPSTREAM_IDLE_SOCKET_MS = 4000

function readConfig (): GatewayConfig | undefined {
  try {
    return loadConfig(process.env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`ai-gateway: ${error.message}\n`)
    return undefined
  }
}

async function main (): Promise<void> {
  const config = readConfig()
  if (config === undefined) {
    process.exitCode = 1
    return
  }
  const logger = createLogger({ service: 'ai-gateway', environment: config.environment, level: config.level, redactKeys: config.logRedactKeys })
  const sanitize = createSanitizer({ extraKeys: config.logRedactKeys })
  if (config.usingDevSecret) {
    logger.warn('JWT_SECRET_KEY is unset: verifying tokens with the public development secret (never do this in production)')
  }
  if (config.trustedUserHeader !== undefined) {
    logger.warn({ header: config.trustedUserHeader }, 'trusted user header mode: the user id is taken from a header without verification; only an authenticating proxy may reach this gateway')
  }
  const now = (): number => performance.now()

  // One keep-alive pool for proxied traffic (node:http, for http-proxy-3), one small undici pool for probes.
  const agent = new Agent({ keepAlive: true, maxSockets: config.upstreamMaxSockets, timeout: UPSTREAM_IDLE_SOCKET_MS })
  const probes = new Pool(config.upstreamUrl.origin, { connections: 2, keepAliveTimeout: UPSTREAM_IDLE_SOCKET_MS })
  // The cache's own upstream calls (it reads whole answers to store them): a keep-alive undici pool.
  const upstreamPool = new Pool(config.upstreamUrl.origin, { connections: config.upstreamMaxSockets, keepAliveTimeout: UPSTREAM_IDLE_SOCKET_MS })
  // The shared Redis client, the rate limiter and the cache; `edge.state()` and `edge.redis` are for health and metrics.
  // One cap on upstream calls in flight for both paths (proxy and the cache's own calls).
  const upstreamGate = createUpstreamGate(config.maxConcurrentUpstream)
  // `metrics` is created just below, before any request can reach Redis.
  const edge = createEdgeServices({ config, logger, upstream: upstreamPool, upstreamGate, now, onRedisError: (source) => { metrics.redisError(source) } })

  const drain = new Drain()
  const graceMs = config.shutdownGraceSeconds * 1000
  let shutdownStartedAt = now()

  // Observability (docs/observability.md): one registry for this process, fed by the completion log.
  const metrics = createMetrics({
    defaultMetrics: true,
    limiterState: () => edge.rateLimiter.state(),
    cacheMode: () => edge.state().cache.store,
    redisConfigured: edge.redis !== undefined,
    tokenSettleFailures: () => edge.rateLimiter.settleFailures()
  })
  edge.redis?.on('error', () => { metrics.redisError('connection') })
  const db = config.databaseUrl === undefined ? undefined : createPostgresProbe({ url: config.databaseUrl, now })
  const health = createHealth({
    upstream: createUpstreamProbe({ dispatcher: probes, upstreamUrl: config.upstreamUrl, now }),
    redis: edge.redis === undefined ? undefined : createRedisProbe({ client: edge.redis, now, onFailure: () => { metrics.redisError('health_probe') } }),
    db: db?.probe,
    isDraining: () => drain.draining,
    now,
    cacheMs: config.healthCacheMs
  })

  // The usage ledger (DATABASE_URL): fed by the completion log, read by GET /v1/ai/usage (docs/usage.md).
  const usage = createUsageServices({ config, logger, registry: metrics.registry })

  // One identity stage for the AI routes and GET /v1/ai/usage.
  const identity = createIdentityStage({
    key: await importHs256Key(config.jwtSecret),
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    clockToleranceSeconds: config.jwtClockToleranceSeconds,
    keyId: config.jwtKeyId,
    trustedUserHeader: config.trustedUserHeader
  })
  const pipeline = buildPipeline({
    identity,
    rateLimit: edge.stages.rateLimit,
    body: createBodyStage({ maxBodyBytes: config.maxBodyBytes }),
    cache: edge.stages.cache,
    proxy: createProxyStage({
      upstreamUrl: config.upstreamUrl,
      agent,
      engineTimeoutMs: config.engineTimeoutSeconds * 1000,
      streamIdleTimeoutMs: config.streamIdleTimeoutSeconds * 1000,
      ssePingMs: config.ssePingSeconds * 1000,
      gate: upstreamGate,
      trustedUserHeader: config.trustedUserHeader,
      now
    })
  })
  const server = buildServer({
    pipeline,
    health,
    drain,
    logger,
    sanitize,
    completionLog: createCompletionLog({ logger, sanitize, metrics, now, listeners: usage === undefined ? [] : [usage.ledger.record] }),
    usage: createUsageRoute({
      identity,
      ledger: usage,
      tokenBudgets: edge.tokenBudgets.tokenBudgets,
      requestLimit: config.rateLimitEnabled ? { limit: config.rateLimitPerWindow, windowSeconds: config.rateLimitWindowSeconds } : undefined,
      logger
    }),
    // With AI_GATEWAY_METRICS_PORT, /metrics has its own listener (below) and is not served here.
    metrics: config.metricsPort === undefined ? metrics : undefined,
    now,
    headersTimeoutMs: config.headersTimeoutSeconds * 1000,
    requestTimeoutMs: config.requestBodyTimeoutSeconds * 1000,
    keepAliveTimeoutMs: config.keepAliveTimeoutSeconds * 1000
  })

  // Closed in this order once in-flight requests are done; Redis last (edge.closers).
  const closers: Closer[] = [
    { name: 'upstream-agent', close: () => { agent.destroy() } },
    { name: 'upstream-pool', close: async () => { await upstreamPool.close() } },
    { name: 'health-probes', close: async () => { await probes.close() } },
    { name: 'health-db', close: async () => { await db?.close() } },
    // After the server: every completion record is in. It gets what is left of the grace period (at least USAGE_FLUSH_MIN_MS).
    {
      name: 'usage-ledger',
      timeoutMs: graceMs + USAGE_FLUSH_MIN_MS + 1000,
      close: async () => { await usage?.close(Math.max(USAGE_FLUSH_MIN_MS, shutdownStartedAt + graceMs - now())) }
    },
    ...edge.closers
  ]

  server.once('error', (error) => {
    logger.fatal({ err: error }, 'cannot listen')
    logger.flush(() => process.exit(1))
  })
  server.listen(config.port, config.host, () => {
    const address = server.address()
    if (address !== null && typeof address === 'object') logger.info({ address: address.address, port: address.port }, 'listening')
  })
  if (config.metricsPort !== undefined) {
    const metricsServer = createMetricsServer(metrics, (error) => { logger.error({ err: describeError(error, sanitize) }, 'metrics scrape failed') })
    metricsServer.once('error', (error) => {
      logger.fatal({ err: error, port: config.metricsPort }, 'cannot listen for metrics')
      logger.flush(() => process.exit(1))
    })
    metricsServer.listen(config.metricsPort, config.host, () => {
      const address = metricsServer.address()
      if (address !== null && typeof address === 'object') logger.info({ address: address.address, port: address.port }, 'metrics listening')
    })
    // Closed first: it depends on nothing the other closers close.
    closers.unshift({
      name: 'metrics-server',
      close: async () => {
        await new Promise<void>((resolve) => {
          metricsServer.close(() => { resolve() })
          metricsServer.closeAllConnections()
        })
      }
    })
  }

  handleSignals(
    async () => {
      shutdownStartedAt = now()
      await shutdown({ server, drain, graceMs, closers, logger })
    },
    drain,
    (error) => {
      if (error !== undefined) logger.error({ err: error }, 'shutdown failed')
      logger.flush(() => process.exit(error === undefined ? 0 : 1))
    }
  )
}

main().catch((error: unknown) => {
  process.stderr.write(`ai-gateway: failed to start: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
