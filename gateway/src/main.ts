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
import { loadConfig, type GatewayConfig } from './config.js'
import { createHealth } from './health.js'
import { createBodyStage } from './pipeline/body.js'
import { createIdentityStage, importHs256Key } from './pipeline/identity.js'
import { buildPipeline } from './pipeline/index.js'
import { createProxyStage } from './pipeline/proxy.js'
import { buildServer } from './server.js'
import { Drain, handleSignals, shutdown, type Closer } from './shutdown.js'

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
  const logger = createLogger({ service: 'ai-gateway', environment: config.environment, level: config.level })
  if (config.usingDevSecret) {
    logger.warn({ env: config.environment }, 'JWT_SECRET_KEY is unset: verifying tokens with the public development secret (never do this in production)')
  }
  if (config.trustedUserHeader !== undefined) {
    logger.warn({ header: config.trustedUserHeader }, 'trusted user header mode: the user id is taken from a header without verification; only an authenticating proxy may reach this gateway')
  }
  const now = (): number => performance.now()

  // One keep-alive pool for proxied traffic (node:http, for http-proxy-3), one small undici pool for probes.
  const agent = new Agent({ keepAlive: true, maxSockets: config.upstreamMaxSockets, timeout: UPSTREAM_IDLE_SOCKET_MS })
  const probes = new Pool(config.upstreamUrl.origin, { connections: 2, keepAliveTimeout: UPSTREAM_IDLE_SOCKET_MS })

  const drain = new Drain()
  const pipeline = buildPipeline({
    identity: createIdentityStage({
      key: await importHs256Key(config.jwtSecret),
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      clockToleranceSeconds: config.jwtClockToleranceSeconds,
      trustedUserHeader: config.trustedUserHeader
    }),
    body: createBodyStage({ maxBodyBytes: config.maxBodyBytes }),
    proxy: createProxyStage({
      upstreamUrl: config.upstreamUrl,
      agent,
      engineTimeoutMs: config.engineTimeoutSeconds * 1000,
      streamIdleTimeoutMs: config.streamIdleTimeoutSeconds * 1000,
      trustedUserHeader: config.trustedUserHeader,
      now
    })
  })
  const server = buildServer({
    pipeline,
    health: createHealth({ dispatcher: probes, upstreamUrl: config.upstreamUrl, isDraining: () => drain.draining, now }),
    drain,
    logger,
    now,
    headersTimeoutMs: config.headersTimeoutSeconds * 1000,
    requestTimeoutMs: config.requestBodyTimeoutSeconds * 1000,
    keepAliveTimeoutMs: config.keepAliveTimeoutSeconds * 1000
  })

  // Closed in this order once in-flight requests are done (Redis joins this list later).
  const closers: Closer[] = [
    { name: 'upstream-agent', close: () => { agent.destroy() } },
    { name: 'health-probes', close: async () => { await probes.close() } }
  ]

  server.once('error', (error) => {
    logger.fatal({ err: error }, 'cannot listen')
    logger.flush(() => process.exit(1))
  })
  server.listen(config.port, config.host, () => {
    const address = server.address()
    if (address !== null && typeof address === 'object') logger.info({ address: address.address, port: address.port }, 'listening')
  })

  handleSignals(
    async () => { await shutdown({ server, drain, graceMs: config.shutdownGraceSeconds * 1000, closers, logger }) },
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
