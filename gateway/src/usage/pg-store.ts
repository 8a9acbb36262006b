/**
 * The ledger's rows in PostgreSQL (schema.ts), with the `pg` driver.
 *
 * Two small pools, so that a slow write never holds up a reader and the
 * other way round: the writer (one connection, generous deadlines: a batch
 * can be large) and the readers of GET /v1/ai/usage (short deadlines: an
 * answer from memory soon beats a complete one late). A connection that
 * failed is destroyed, not reused; the server then rolls back whatever it
 * had not committed.
 *
 * A batch is one transaction: its id goes into ai_usage_batches first; if
 * the id is already there (an attempt whose COMMIT outcome we never learnt
 * did commit), nothing else is done. Then one upsert adds every row, passed
 * as arrays (six parameters whatever the batch size, where one parameter per
 * value would hit the protocol's 65 535 limit at ~10 000 rows).
 */
import pg from 'pg'
import { migrate } from './schema.js'
import type { StoredDay, UsageBatch, UsageStore } from './store.js'

export interface PgUsageStoreOptions {
  /** DATABASE_URL. Never logged. */
  url: string | URL
  /** Deadline of a reader's connection and query, in ms. @default 1000 */
  readTimeoutMs?: number
  /** Deadline of the writer's connection and of each statement, in ms. @default 15000 */
  writeTimeoutMs?: number
  /** How long applied batch ids are kept to recognise a retried batch, in ms. @default 7 days */
  batchRetentionMs?: number
  /** Wall clock in ms (when to prune old batch ids). @default Date.now */
  clock?: () => number
}

/** Old batch ids are deleted at most this often, in the same transaction as a write. */
const PRUNE_EVERY_MS = 3_600_000

const UPSERT = `
INSERT INTO ai_usage (user_id, day, use_case, requests, tokens, cached_requests)
SELECT user_id, day, use_case, requests, tokens, cached_requests
  FROM unnest($1::text[], $2::date[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
       WITH ORDINALITY AS batch (user_id, day, use_case, requests, tokens, cached_requests, position)
 ORDER BY position
ON CONFLICT (user_id, day, use_case) DO UPDATE SET
  requests = ai_usage.requests + excluded.requests,
  tokens = ai_usage.tokens + excluded.tokens,
  cached_requests = ai_usage.cached_requests + excluded.cached_requests`

// One statement is one snapshot: the rows and the applied ids agree with each other.
const READ_DAY = `
SELECT use_case, requests, tokens, cached_requests, NULL::uuid AS batch_id
  FROM ai_usage WHERE user_id = $1 AND day = $2::date
UNION ALL
SELECT NULL, NULL, NULL, NULL, batch_id
  FROM ai_usage_batches WHERE batch_id = ANY($3::uuid[])`

function createPool (url: string, max: number, timeoutMs: number, name: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    idleTimeoutMillis: 30_000,
    allowExitOnIdle: true,
    application_name: name
  })
  // An idle connection that breaks (PostgreSQL restarted) is reported here; the pool drops it and the next use reconnects.
  pool.on('error', () => {})
  return pool
}

export function createPgUsageStore (options: PgUsageStoreOptions): UsageStore {
  const url = String(options.url)
  const writer = createPool(url, 1, options.writeTimeoutMs ?? 15_000, 'ai-gateway-usage')
  const readers = createPool(url, 2, options.readTimeoutMs ?? 1000, 'ai-gateway-usage-read')
  const retentionMs = options.batchRetentionMs ?? 7 * 86_400_000
  const clock = options.clock ?? Date.now
  let prunedAt = -Infinity

  return {
    migrate: async () => { await migrate(writer) },

    write: async (batch: UsageBatch) => {
      const client = await writer.connect()
      let failure: unknown
      try {
        await client.query('BEGIN')
        const claimed = await client.query('INSERT INTO ai_usage_batches (batch_id) VALUES ($1) ON CONFLICT (batch_id) DO NOTHING', [batch.id])
        if (claimed.rowCount === 0) {
          await client.query('ROLLBACK')
          return 'duplicate'
        }
        const { entries } = batch
        await client.query(UPSERT, [
          entries.map((entry) => entry.userId),
          entries.map((entry) => entry.day),
          entries.map((entry) => entry.useCase),
          entries.map((entry) => entry.requests),
          entries.map((entry) => entry.tokens),
          entries.map((entry) => entry.cachedRequests)
        ])
        const now = clock()
        const prune = now - prunedAt >= PRUNE_EVERY_MS
        if (prune) {
          await client.query('DELETE FROM ai_usage_batches WHERE applied_at < now() - $1::bigint * interval \'1 millisecond\'', [retentionMs])
        }
        await client.query('COMMIT')
        if (prune) prunedAt = now
        return 'applied'
      } catch (error) {
        failure = error
        throw error
      } finally {
        client.release(failure === undefined ? undefined : failure instanceof Error ? failure : true)
      }
    },

    readDay: async (userId, day, batchIds): Promise<StoredDay> => {
      const result = await readers.query<{ use_case: string | null; requests: string | null; tokens: string | null; cached_requests: string | null; batch_id: string | null }>(
        READ_DAY, [userId, day, [...batchIds]])
      const rows: StoredDay['rows'] = []
      const applied = new Set<string>()
      for (const row of result.rows) {
        if (row.batch_id !== null) applied.add(row.batch_id)
        else rows.push({ useCase: row.use_case ?? '', requests: Number(row.requests), tokens: Number(row.tokens), cachedRequests: Number(row.cached_requests) })
      }
      return { rows, applied }
    },

    close: async () => {
      await Promise.all([writer.end(), readers.end()])
    }
  }
}
