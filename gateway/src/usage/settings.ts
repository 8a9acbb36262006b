/**
 * The usage ledger's rows of the gateway's config table, for config.ts to
 * spread in (`...USAGE_SETTINGS`). The ledger itself is on exactly when
 * DATABASE_URL is set (docs/usage.md).
 */
import { integer, type SettingsTable } from '../../../common/src/config.js'
import { USAGE_LEDGER_DEFAULTS } from './ledger.js'

export const USAGE_SETTINGS = {
  /** How often pending usage is written to PostgreSQL, in ms. @default 1000 */
  usageFlushMs: {
    env: 'AI_GATEWAY_USAGE_FLUSH_MS',
    default: USAGE_LEDGER_DEFAULTS.flushMs,
    parse: integer({ min: 10, max: 600_000 }),
    description: 'How often the usage ledger writes what it has gathered to PostgreSQL (one upsert), in milliseconds.'
  },
  /** Pending rows that trigger a write before the period is up. @default 1000 */
  usageFlushRows: {
    env: 'AI_GATEWAY_USAGE_FLUSH_ROWS',
    default: USAGE_LEDGER_DEFAULTS.flushRows,
    parse: integer({ min: 1, max: 1_000_000 }),
    description: 'Distinct pending (user, day, use case) rows that make the usage ledger write at once rather than at the end of the period.'
  },
  /** Most (user, day, use case) rows held in memory while PostgreSQL is slow or down; new rows past it are dropped and logged. @default 100000 */
  usageMaxPendingRows: {
    env: 'AI_GATEWAY_USAGE_MAX_PENDING_ROWS',
    default: USAGE_LEDGER_DEFAULTS.maxPendingRows,
    parse: integer({ min: 1, max: 10_000_000 }),
    description: 'Most (user, day, use case) rows the usage ledger holds in memory while PostgreSQL is unavailable; usage that would need a new row past it is dropped, logged at error and counted.'
  }
} satisfies SettingsTable
