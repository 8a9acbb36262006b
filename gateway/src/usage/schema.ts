/**
 * The usage ledger's schema (docs/usage.md), created by `migrate`: at
 * gateway start (retried in the background while PostgreSQL is down) and by
 * `make migrate`. Every statement is idempotent, and they run in one
 * transaction under a transaction-level advisory lock, so replicas starting
 * together take turns rather than race on `CREATE TABLE IF NOT EXISTS`
 * (which is not safe under concurrency: two creators can both pass the
 * "not exists" check and one fails on the catalog's unique index).
 */
import type pg from 'pg'

/** pg_advisory_xact_lock key: the ASCII of "aiusage1" read as an int64, unlikely to meet another application's. */
export const MIGRATION_LOCK_KEY = '7019270632649483569'

export const SCHEMA_STATEMENTS: readonly string[] = Object.freeze([
  `CREATE TABLE IF NOT EXISTS ai_usage (
    user_id         text   NOT NULL,
    day             date   NOT NULL,
    use_case        text   NOT NULL,
    requests        bigint NOT NULL DEFAULT 0,
    tokens          bigint NOT NULL DEFAULT 0,
    cached_requests bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, use_case)
  )`,
  // One row per batch written: a batch retried after an unknown COMMIT outcome is recognised and not counted twice.
  `CREATE TABLE IF NOT EXISTS ai_usage_batches (
    batch_id   uuid        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`,
  'CREATE INDEX IF NOT EXISTS ai_usage_batches_applied_at ON ai_usage_batches (applied_at)',
  // Rows of one day across users (reports, clean-up).
  'CREATE INDEX IF NOT EXISTS ai_usage_day ON ai_usage (day)'
])

/** Something that hands out a connection: a pg.Pool. */
export interface Connector {
  connect: () => Promise<pg.PoolClient>
}

/** Creates the ledger's tables if they are missing; safe to run any number of times, concurrently. */
export async function migrate (pool: Connector): Promise<void> {
  const client = await pool.connect()
  let failure: unknown
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY])
    for (const statement of SCHEMA_STATEMENTS) await client.query(statement)
    await client.query('COMMIT')
  } catch (error) {
    failure = error
    throw error
  } finally {
    // A failed connection is not put back in the pool (the server rolls the transaction back when it goes).
    client.release(failure === undefined ? undefined : failure instanceof Error ? failure : true)
  }
}
