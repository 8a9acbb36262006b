/**
 * The usage ledger built from the configuration, for main.ts to wire: the
 * PostgreSQL store, the batching ledger (started: it migrates in the
 * background) with its metrics, and how it closes. Undefined when
 * DATABASE_URL is unset: the ledger is off.
 */
import type { Registry } from 'prom-client'
import type { Logger } from '../../../common/src/logger.js'
import type { GatewayConfig } from '../config.js'
import { createUsageLedger, type UsageLedger } from './ledger.js'
import { createLedgerMetrics } from './metrics.js'
import { createPgUsageStore } from './pg-store.js'
import type { UsageStore } from './store.js'

export interface UsageServices {
  ledger: UsageLedger
  store: UsageStore
  /** Writes what is left (within `timeoutMs`), then closes the connections. */
  close: (timeoutMs: number) => Promise<void>
}

export function createUsageServices (options: { config: GatewayConfig; logger: Logger; registry: Registry }): UsageServices | undefined {
  const { config, logger } = options
  if (config.databaseUrl === undefined) {
    logger.info('DATABASE_URL is unset: the usage ledger is off')
    return undefined
  }
  const store = createPgUsageStore({ url: config.databaseUrl })
  let ledger: UsageLedger | undefined
  const metrics = createLedgerMetrics(options.registry, () => ledger?.state() ?? { ready: false, failing: false, pendingRows: 0 })
  ledger = createUsageLedger({
    store,
    logger,
    flushMs: config.usageFlushMs,
    flushRows: config.usageFlushRows,
    maxPendingRows: config.usageMaxPendingRows,
    metrics
  })
  ledger.start()
  const started = ledger
  return {
    ledger: started,
    store,
    close: async (timeoutMs) => {
      await started.close(timeoutMs)
      await store.close()
    }
  }
}
