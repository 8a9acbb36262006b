/**
 * Creates the usage ledger's tables at DATABASE_URL: `make migrate` (or
 * `node dist/gateway/src/tools/migrate.js`). The gateway runs the same
 * migration at start, so this is for creating the schema ahead of a
 * deployment or checking the database is reachable. Idempotent, and safe
 * while gateways start (usage/schema.ts). Exits 0 when the tables exist.
 */
import pg from 'pg'
import { ConfigError, loadSettings } from '../../../common/src/config.js'
import { SETTINGS } from '../config.js'
import { describeStoreError } from '../usage/ledger.js'
import { migrate } from '../usage/schema.js'

const TIMEOUT_MS = 10_000

async function main (): Promise<number> {
  let databaseUrl: URL | undefined
  try {
    ({ databaseUrl } = loadSettings({ databaseUrl: SETTINGS.databaseUrl }))
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`migrate: ${error.message}\n`)
    return 1
  }
  if (databaseUrl === undefined) {
    process.stderr.write('migrate: DATABASE_URL is unset: there is no usage ledger to migrate\n')
    return 1
  }
  const pool = new pg.Pool({ connectionString: String(databaseUrl), max: 1, connectionTimeoutMillis: TIMEOUT_MS, query_timeout: TIMEOUT_MS, application_name: 'ai-gateway-migrate' })
  pool.on('error', () => {})
  try {
    await migrate(pool)
    process.stdout.write('migrate: the usage ledger tables (ai_usage, ai_usage_batches) are in place\n')
    return 0
  } catch (error) {
    // The code only: a message could quote the URL's parts.
    process.stderr.write(`migrate: failed (${describeStoreError(error)})\n`)
    return 1
  } finally {
    await pool.end().catch(() => {})
  }
}

process.exitCode = await main()
