// The ledger's batching, on a store in memory whose failures the test steers: usage is gathered off the request path and written in batches; a failed batch is retried under the same id (so an unknown COMMIT outcome is not counted twice); the pending cap drops new rows and logs them; the schema is migrated first, retried while the store is down; close writes what is left or logs what is lost; readers see memory plus store, counted once.
import t, { type Test } from 'tap'
import { waitFor } from '../../../common/testkit/ports.js'
import { createUsageLedger, type UsageLedgerOptions } from '../../src/usage/ledger.js'
import { readDayUsage } from '../../src/usage/reader.js'
import type { UsageCounts } from '../../src/usage/record.js'
import { completion, logSink, MemoryUsageStore } from './helpers.js'

const NOON = Date.parse('2026-11-26T12:00:00Z')
const DAY = '2026-11-26'

function setup (t: Test, options: Partial<UsageLedgerOptions> = {}) {
  const store = new MemoryUsageStore()
  const { logger, lines } = logSink()
  const dropped: UsageCounts[] = []
  const outcomes: string[] = []
  const ledger = createUsageLedger({
    store,
    logger,
    clock: () => NOON,
    flushMs: 30,
    retryMinMs: 10,
    retryMaxMs: 40,
    metrics: { dropped: (counts) => { dropped.push(counts) }, written: (outcome) => { outcomes.push(outcome) } },
    ...options
  })
  t.teardown(async () => { await ledger.close(0) })
  return { store, ledger, lines, dropped, outcomes }
}

t.test('usage is gathered in memory and written in one batch per period', async (t) => {
  const { store, ledger } = setup(t, { flushMs: 200 })
  ledger.start()
  await waitFor(() => store.migrations === 1 ? true : undefined)
  for (let i = 0; i < 10; i++) ledger.record(completion({ tokens_used: 10 }))
  ledger.record(completion({ user_id: 'bob', route: '/v1/ai/chat', use_case: 'chat', tokens_used: 7 }))
  ledger.record(completion({ http_status: 429, status: 'rate_limited', rate_limited: true, error_type: 'RATE_LIMIT_EXCEEDED', tokens_used: null }))
  t.equal(store.writes.length, 0, 'record() returns before anything is written')
  t.equal(ledger.state().pendingRows, 2, 'one row per (user, day, use case)')
  await waitFor(() => store.writes.length === 1 ? true : undefined, { timeoutMs: 5000 })
  t.same(store.writes[0]!.entries, [
    { userId: 'alice', day: DAY, useCase: 'horoscope_daily', requests: 10, tokens: 100, cachedRequests: 0 },
    { userId: 'bob', day: DAY, useCase: 'chat', requests: 1, tokens: 7, cachedRequests: 0 }
  ], 'sorted rows, summed')
  t.equal(ledger.state().pendingRows, 0)
})

t.test('FLUSH_ROWS distinct rows are written before the period is up', async (t) => {
  const { store, ledger } = setup(t, { flushMs: 600_000, flushRows: 3 })
  ledger.start()
  await waitFor(() => store.migrations === 1 ? true : undefined)
  ledger.record(completion({ user_id: 'u1' }))
  ledger.record(completion({ user_id: 'u2' }))
  t.equal(store.writes.length, 0)
  ledger.record(completion({ user_id: 'u3' }))
  await waitFor(() => store.writes.length === 1 ? true : undefined, { timeoutMs: 5000 })
  t.equal(store.writes[0]!.entries.length, 3)
})

t.test('a failed batch is kept under its id and retried; new usage waits in the next batch', async (t) => {
  const { store, ledger, lines, outcomes } = setup(t)
  ledger.start()
  await waitFor(() => store.migrations === 1 ? true : undefined)
  store.fail = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  ledger.record(completion({ tokens_used: 5 }))
  await waitFor(() => store.writes.length >= 3 ? true : undefined, { timeoutMs: 5000 })
  const firstId = store.writes[0]!.id
  t.ok(store.writes.every((batch) => batch.id === firstId), 'every retry carries the same batch id')
  ledger.record(completion({ tokens_used: 6 }))
  t.equal(ledger.state().pendingRows, 2, 'the failed batch and the new pending row')
  t.equal(lines.filter((line) => line.msg.startsWith('usage ledger: PostgreSQL unavailable')).length, 1, 'one warning per outage')
  t.match(lines.find((line) => line.level === 'warn'), { error: 'ECONNREFUSED', pending_rows: Number })
  store.fail = undefined
  await waitFor(() => store.total().requests === 2 ? true : undefined, { timeoutMs: 5000 })
  t.same(store.total(), { requests: 2, tokens: 11, cachedRequests: 0 })
  t.ok(lines.some((line) => line.msg === 'usage ledger: PostgreSQL reachable again'))
  t.ok(outcomes.includes('failed') && outcomes.includes('applied'))
})

t.test('a batch that committed although the write seemed to fail is not counted twice', async (t) => {
  const { store, ledger, lines, outcomes } = setup(t)
  ledger.start()
  await waitFor(() => store.migrations === 1 ? true : undefined)
  store.commitThenFail = true
  ledger.record(completion({ tokens_used: 40 }))
  await waitFor(() => outcomes.includes('duplicate') ? true : undefined, { timeoutMs: 5000 })
  t.same(store.total(), { requests: 1, tokens: 40, cachedRequests: 0 })
  t.ok(lines.some((line) => line.msg.includes('already written')))
})

t.test('the pending cap: new rows past it are dropped, counted and logged at error; known rows still add up', async (t) => {
  const { store, ledger, lines, dropped } = setup(t, { maxPendingRows: 2 })
  store.fail = Object.assign(new Error('down'), { code: 'ECONNREFUSED' })
  ledger.start()
  ledger.record(completion({ user_id: 'u1', tokens_used: 1 }))
  ledger.record(completion({ user_id: 'u2', tokens_used: 2 }))
  ledger.record(completion({ user_id: 'u3', tokens_used: 30 }))
  ledger.record(completion({ user_id: 'u4', tokens_used: 40 }))
  ledger.record(completion({ user_id: 'u1', tokens_used: 100 }))
  t.equal(ledger.state().pendingRows, 2)
  t.same(dropped, [{ userId: 'u3', day: DAY, useCase: 'horoscope_daily', requests: 1, tokens: 30, cachedRequests: 0 }, { userId: 'u4', day: DAY, useCase: 'horoscope_daily', requests: 1, tokens: 40, cachedRequests: 0 }], 'the metric sees each drop')
  const report = await waitFor(() => lines.find((line) => line.msg === 'usage ledger full: usage dropped'), { timeoutMs: 5000 })
  t.match(report, { level: 'error', dropped_requests: 2, dropped_tokens: 70, max_pending_rows: 2 })
  store.fail = undefined
  await waitFor(() => store.total().requests === 3 ? true : undefined, { timeoutMs: 5000 })
  t.same(store.total(), { requests: 3, tokens: 103, cachedRequests: 0 }, 'what was kept is written, u1 twice')
})

t.test('the schema is migrated before the first write, retried while the store is down', async (t) => {
  const { store, ledger } = setup(t)
  store.fail = Object.assign(new Error('down'), { code: 'ECONNREFUSED' })
  ledger.start()
  ledger.record(completion())
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(ledger.state().ready, false)
  t.equal(store.writes.length, 0, 'nothing is written before the schema is there')
  store.fail = undefined
  await waitFor(() => store.writes.length === 1 ? true : undefined, { timeoutMs: 5000 })
  t.equal(store.migrations, 1)
  t.equal(ledger.state().ready, true)
})

t.test('close writes what is pending', async (t) => {
  const { store, ledger, lines } = setup(t, { flushMs: 600_000 })
  ledger.start()
  await waitFor(() => store.migrations === 1 ? true : undefined)
  ledger.record(completion({ tokens_used: 9 }))
  await ledger.close(2000)
  t.same(store.total(), { requests: 1, tokens: 9, cachedRequests: 0 })
  t.ok(lines.some((line) => line.msg === 'usage ledger: everything written'))
  ledger.record(completion())
  t.equal(store.total().requests, 1, 'usage after close is not written…')
  await ledger.close(0)
})

t.test('close with the store down: what is lost is logged at error with its totals', async (t) => {
  const { store, ledger, lines } = setup(t, { flushMs: 600_000 })
  ledger.start()
  await waitFor(() => store.migrations === 1 ? true : undefined)
  store.fail = Object.assign(new Error('down'), { code: 'ECONNREFUSED' })
  ledger.record(completion({ tokens_used: 9 }))
  ledger.record(completion({ user_id: 'bob', tokens_used: 1 }))
  await ledger.close(300)
  t.match(lines.find((line) => line.msg === 'usage ledger: shutting down with usage not written to PostgreSQL'), { level: 'error', rows: 2, requests: 2, tokens: 10 })
})

t.test('readers see stored rows plus memory, each counted once', async (t) => {
  const { store, ledger } = setup(t, { flushMs: 600_000 })
  ledger.start()
  await waitFor(() => store.migrations === 1 ? true : undefined)
  ledger.record(completion({ tokens_used: 10 }))
  ledger.record(completion({ route: '/v1/ai/chat', use_case: 'chat', tokens_used: 3, cached: true }))
  ledger.record(completion({ user_id: 'bob', tokens_used: 1000 }))
  let usage = await readDayUsage(store, ledger, 'alice', DAY)
  t.equal(usage.ledger, 'ok')
  t.same([...usage.byUseCase], [['horoscope_daily', { requests: 1, tokens: 10, cachedRequests: 0 }], ['chat', { requests: 1, tokens: 0, cachedRequests: 1 }]], 'from memory, only alice (the cache hit cost nothing)')

  // Written to the store, but as if the reader had taken its memory snapshot just before: applied ids say so.
  const heldBefore = ledger.held('alice', DAY)
  await ledger.close(2000)
  const stored = await store.readDay('alice', DAY, heldBefore.map((part) => part.batchId))
  t.equal(stored.applied.size, 1, 'the batch the memory rows were held under is applied')
  usage = await readDayUsage(store, ledger, 'alice', DAY)
  t.same(usage.byUseCase.get('horoscope_daily'), { requests: 1, tokens: 10, cachedRequests: 0 }, 'not twice')

  store.fail = Object.assign(new Error('down'), { code: 'ECONNREFUSED' })
  usage = await readDayUsage(store, ledger, 'alice', DAY)
  t.match(usage, { ledger: 'unavailable', error: 'ECONNREFUSED' })
})
