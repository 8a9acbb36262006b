// The usage ledger on a real, throwaway PostgreSQL: the migration is idempotent and safe when replicas run it at once; a batch is applied once even when written twice under its id; large batches fit one statement; reads see one user's day with which batches are applied; and a ledger that lives through a PostgreSQL restart ends with exactly the usage it was given.
import t from 'tap'
import pg from 'pg'
import { randomUUID } from 'node:crypto'
import { waitFor } from '../../../common/testkit/ports.js'
import { startPostgres } from '../../../common/testkit/postgres.js'
import { spawnProcess } from '../../../common/testkit/process.js'
import { createUsageLedger } from '../../src/usage/ledger.js'
import { createPgUsageStore } from '../../src/usage/pg-store.js'
import { migrate } from '../../src/usage/schema.js'
import type { UsageEntry } from '../../src/usage/record.js'
import { completion, logSink } from './helpers.js'

const DAY = '2026-11-26'
const entry = (userId: string, useCase: string, requests: number, tokens: number, cachedRequests = 0): UsageEntry =>
  ({ userId, day: DAY, useCase, requests, tokens, cachedRequests })

t.test('on PostgreSQL', async (t) => {
  const postgres = await startPostgres(t)
  if (postgres === undefined) {
    t.comment('PostgreSQL binaries not found (scripts/install-test-deps.sh installs them): skipped')
    return
  }
  const admin = new pg.Pool({ connectionString: postgres.url, max: 2 })
  admin.on('error', () => {})
  t.teardown(async () => { await admin.end() })

  /** A fresh database per subtest, so each starts with no tables. */
  const database = async (name: string): Promise<string> => {
    await admin.query(`CREATE DATABASE ${name}`)
    return postgres.url.replace(/\/postgres$/, `/${name}`)
  }
  const sums = async (url: string): Promise<Array<Record<string, unknown>>> => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query('SELECT user_id, use_case, requests::int, tokens::int, cached_requests::int FROM ai_usage ORDER BY user_id, use_case')).rows
    } finally {
      await client.end()
    }
  }

  t.test('the migration is idempotent and concurrent-safe', async (t) => {
    const url = await database('migrations')
    const pools = Array.from({ length: 8 }, () => new pg.Pool({ connectionString: url, max: 1 }))
    t.teardown(async () => { await Promise.all(pools.map(async (pool) => { await pool.end() })) })
    const results = await Promise.allSettled(pools.map(async (pool) => { await migrate(pool) }))
    t.same(results.map((result) => result.status), Array(8).fill('fulfilled'), 'eight replicas migrating at once all succeed')
    await migrate(pools[0]!)
    await migrate(pools[0]!)
    const tables = await pools[0]!.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
    t.same(tables.rows.map((row) => row.table_name), ['ai_usage', 'ai_usage_batches'])
    const key = await pools[0]!.query(`SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      WHERE i.indrelid = 'ai_usage'::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`)
    t.same(key.rows.map((row) => row.attname), ['user_id', 'day', 'use_case'], 'primary key (user_id, day, use_case)')
  })

  t.test('make migrate: the same migration from the command line', async (t) => {
    const url = await database('cli')
    const run = spawnProcess(t, process.execPath, ['dist/gateway/src/tools/migrate.js'], { env: { DATABASE_URL: url } })
    t.equal((await run.exited).code, 0, run.stderr.join('\n'))
    t.match(run.stdout.join('\n'), /ai_usage, ai_usage_batches/)
    const again = spawnProcess(t, process.execPath, ['dist/gateway/src/tools/migrate.js'], { env: { DATABASE_URL: url } })
    t.equal((await again.exited).code, 0, 'twice is fine')
    const unset = spawnProcess(t, process.execPath, ['dist/gateway/src/tools/migrate.js'], { env: { DATABASE_URL: '' } })
    t.equal((await unset.exited).code, 1)
    t.match(unset.stderr.join('\n'), /DATABASE_URL is unset/)
    const refused = spawnProcess(t, process.execPath, ['dist/gateway/src/tools/migrate.js'], { env: { DATABASE_URL: 'postgres://postgres:hunter2@127.0.0.1:1/postgres' } })
    t.equal((await refused.exited).code, 1)
    t.match(refused.stderr.join('\n'), /failed \(ECONNREFUSED\)/)
    t.notMatch(refused.stderr.join('\n'), /hunter2/, 'the URL is never quoted')
  })

  t.test('a batch is applied once, whatever the retries; rows add up across batches', async (t) => {
    const url = await database('batches')
    const store = createPgUsageStore({ url })
    t.teardown(store.close)
    await store.migrate()
    const batch = { id: randomUUID(), entries: [entry('alice', 'chat', 2, 50, 1), entry('bob', 'chat', 1, 7)] }
    t.equal(await store.write(batch), 'applied')
    t.equal(await store.write(batch), 'duplicate', 'the same id again: an earlier attempt had committed')
    t.equal(await store.write({ id: randomUUID(), entries: [entry('alice', 'chat', 1, 10)] }), 'applied')
    t.same(await sums(url), [
      { user_id: 'alice', use_case: 'chat', requests: 3, tokens: 60, cached_requests: 1 },
      { user_id: 'bob', use_case: 'chat', requests: 1, tokens: 7, cached_requests: 0 }
    ])
    const unknown = randomUUID()
    const day = await store.readDay('alice', DAY, [batch.id, unknown])
    t.same(day.rows, [{ useCase: 'chat', requests: 3, tokens: 60, cachedRequests: 1 }], 'only alice, only that day')
    t.same([...day.applied], [batch.id], 'which of the asked-about batches are applied')
    t.same((await store.readDay('alice', '2026-11-27', [])).rows, [])
  })

  t.test('a batch larger than one parameter per value allows is one statement', async (t) => {
    const url = await database('large')
    const store = createPgUsageStore({ url })
    t.teardown(store.close)
    await store.migrate()
    const entries = Array.from({ length: 20_000 }, (_, i) => entry(`user-${String(i).padStart(5, '0')}`, 'horoscope_daily', 1, i))
    t.equal(await store.write({ id: randomUUID(), entries }), 'applied')
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    const { rows } = await client.query('SELECT count(*)::int AS n, sum(tokens)::text AS tokens FROM ai_usage').finally(async () => { await client.end() })
    t.same(rows[0], { n: 20_000, tokens: String((20_000 * 19_999) / 2) })
  })

  t.test('a ledger living through a PostgreSQL restart writes exactly what it was given', async (t) => {
    const url = await database('restart')
    const store = createPgUsageStore({ url, writeTimeoutMs: 2000, readTimeoutMs: 500 })
    const { logger, lines } = logSink()
    const ledger = createUsageLedger({ store, logger, flushMs: 20, retryMinMs: 20, retryMaxMs: 200 })
    t.teardown(async () => { await ledger.close(0); await store.close() })
    ledger.start()
    await waitFor(() => ledger.state().ready ? true : undefined, { timeoutMs: 10_000 })

    let requests = 0
    let tokens = 0
    const users = ['alice', 'bob', 'carol']
    const feed = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const used = (requests * 7) % 50
        ledger.record(completion({ user_id: users[requests % users.length]!, tokens_used: used, use_case: requests % 2 === 0 ? 'chat' : 'horoscope_daily' }))
        requests++
        tokens += used
      }
    }
    const pause = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
    for (let round = 0; round < 5; round++) { feed(20); await pause(20) }
    await postgres.stop()
    for (let round = 0; round < 10; round++) { feed(20); await pause(20) }
    t.ok(ledger.state().pendingRows > 0, 'usage waits in memory while PostgreSQL is down')
    t.equal(ledger.state().failing, true)
    await postgres.start()
    for (let round = 0; round < 5; round++) { feed(20); await pause(20) }
    await ledger.close(10_000)
    const total = (await sums(url)).reduce<{ requests: number; tokens: number }>((sum, row) => ({ requests: sum.requests + Number(row.requests), tokens: sum.tokens + Number(row.tokens) }), { requests: 0, tokens: 0 })
    t.same(total, { requests, tokens }, `${requests} requests, ${tokens} tokens: none lost, none twice`)
    t.ok(lines.some((line) => line.msg === 'usage ledger: PostgreSQL reachable again'))
  })
})
