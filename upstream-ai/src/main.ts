/**
 * upstream-ai's entry point, wiring only: configuration → logger → provider
 * (with its pooled undici dispatcher) → server → listen → signals.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { Agent } from 'undici'
import { ConfigError } from '../../common/src/config.js'
import { createLogger } from '../../common/src/logger.js'
import { createSanitizer } from '../../common/src/sanitize.js'
import { loadConfig, type UpstreamAiConfig } from './config.js'
import { createMockProvider } from './providers/mock.js'
import { createOpenAiProvider } from './providers/openai.js'
import type { Provider } from './providers/provider.js'
import { buildServer } from './server.js'

function readConfig (): UpstreamAiConfig | undefined {
  try {
    return loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`upstream-ai: ${error.message}\n`)
    process.exitCode = 1
    return undefined
  }
}

async function main (): Promise<void> {
  const config = readConfig()
  if (config === undefined) return
  const logger = createLogger({ service: 'upstream-ai', environment: config.environment, level: config.effectiveLogLevel, redactKeys: config.logRedactKeys })
  const sanitize = createSanitizer({ extraKeys: config.logRedactKeys })

  // One keep-alive pool for the whole process, closed on shutdown.
  const dispatcher = config.provider === 'openai'
    ? new Agent({ connections: config.openaiMaxConnections, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 })
    : undefined
  let provider: Provider
  if (dispatcher !== undefined && config.openaiApiKey !== undefined) {
    provider = createOpenAiProvider({
      baseUrl: config.openaiBaseUrl,
      apiKey: config.openaiApiKey,
      defaultModel: config.openaiModelDefault,
      timeoutMs: config.timeoutSeconds * 1000,
      dispatcher
    })
    logger.info({ provider: 'openai', base_url: config.openaiBaseUrl.href, model: config.openaiModelDefault }, 'provider ready')
  } else {
    provider = createMockProvider({ latencyMs: config.mockLatencyMs })
    if (config.providerDefaulted) {
      logger.warn({ provider: 'mock' }, 'OPENAI_API_KEY is not set: using the mock provider (deterministic canned text)')
    } else {
      logger.info({ provider: 'mock', latency_ms: config.mockLatencyMs }, 'provider ready')
    }
  }

  const app = buildServer({ provider, logger, sanitize, maxBodyBytes: config.maxBodyBytes })
  const { server } = app
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: sanitize(reason) }, 'unhandled rejection')
  })

  try {
    server.listen(config.port, config.host)
    await once(server, 'listening')
  } catch (error) {
    logger.fatal({ err: sanitize(error), host: config.host, port: config.port }, 'could not listen')
    await dispatcher?.destroy()
    process.exitCode = 1
    return
  }
  const address = server.address() as AddressInfo
  logger.info({ address: address.address, port: address.port }, 'listening')

  let stopping = false
  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: closing every connection now')
      server.closeAllConnections()
      return
    }
    stopping = true
    logger.info({ signal, in_flight: app.inFlight() }, 'shutting down')
    app.startDraining()
    // Stop accepting; idle keep-alive connections are closed now, busy ones when their request ends.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    const graceOver = new AbortController()
    const finishedInTime = await Promise.race([
      app.idle().then(() => true),
      delay(config.shutdownGraceSeconds * 1000, false, { signal: graceOver.signal }).catch(() => false)
    ])
    graceOver.abort()
    if (!finishedInTime) logger.warn({ in_flight: app.inFlight() }, 'grace period over: closing the remaining connections')
    server.closeAllConnections()
    await closed
    if (dispatcher !== undefined) {
      await Promise.race([dispatcher.close(), delay(1000)])
      await dispatcher.destroy()
    }
    logger.info('stopped')
    logger.flush()
    process.exitCode = 0
    // Should anything still hold the event loop, do not hang the orchestrator.
    setTimeout(() => process.exit(0), 2000).unref()
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      shutdown(signal).catch((error: unknown) => {
        logger.error({ err: sanitize(error) }, 'shutdown failed')
        process.exit(1)
      })
    })
  }
}

await main()
