/**
 * PostgreSQL probe: `SELECT 1` at DATABASE_URL with the `pg` driver. One
 * pooled connection is kept and reused (a probe every second must not open
 * a connection every second); a broken one is dropped by the pool and the
 * next probe connects again. The connection and the query each have the
 * probe's deadline, and the probe as a whole is bounded by it too.
 */
import pg from 'pg'
import { timedProbe, type Probe } from './probe.js'

export interface PostgresProbeOptions {
  /** DATABASE_URL: `postgres://user:password@host:port/db`. Never logged. */
  url: string | URL
  /** @default 1000 */
  timeoutMs?: number
  now: () => number
}

export interface PostgresProbe {
  probe: Probe
  close: () => Promise<void>
}

export function createPostgresProbe (options: PostgresProbeOptions): PostgresProbe {
  const timeoutMs = options.timeoutMs ?? 1000
  const pool = new pg.Pool({
    connectionString: String(options.url),
    max: 1,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    idleTimeoutMillis: 30_000,
    allowExitOnIdle: true,
    application_name: 'ai-gateway-health'
  })
  // An idle connection that breaks (PostgreSQL restarted) is reported here; the pool drops it, the next probe reconnects.
  pool.on('error', () => {})
  const probe = timedProbe(async () => {
    await pool.query('SELECT 1')
    return undefined
  }, timeoutMs, options.now)
  return {
    probe,
    close: async () => { await pool.end() }
  }
}
