// The usage ledger through the built gateway, the real upstream-ai (mock provider) and a real PostgreSQL: the gateway starts while PostgreSQL is down, usage survives a PostgreSQL restart in the middle of a run and the ledger ends equal to the sum of the completion log's settled usage; GET /v1/ai/usage shows each caller only their own usage (a forged X-User-Id or ?user_id= switches nothing), 401 without a token, 405 for other methods, "unavailable" from memory while PostgreSQL is down; 429s are not usage; SIGTERM writes what is pending; the pending cap drops and logs; without DATABASE_URL the ledger is "disabled".
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import pg from 'pg'
import { freePort, waitFor } from '../../../common/testkit/ports.js'
import { startPostgres } from '../../../common/testkit/postgres.js'
import { ROOT, startService, type RunningService } from '../../../common/testkit/process.js'
import { bearer, call, completionLines, openStream, startGateway } from '../helpers/gateway.js'

const UPSTREAM_AI_MAIN = 'dist/upstream-ai/src/main.js'
const skip = existsSync(join(ROOT, UPSTREAM_AI_MAIN)) ? false : `${UPSTREAM_AI_MAIN} is not built`
const LIMIT = 6

interface Totals { requests: number; tokens: number; cached_requests: number }

/** What the ledger must hold: the completion log's admitted generate/chat requests, per user. */
function fromLog (gateway: RunningService): Map<string, Totals> {
  const totals = new Map<string, Totals>()
  for (const line of completionLines(gateway)) {
    if (line.user_id === null || line.rate_limited === true || !['/v1/ai/generate', '/v1/ai/chat'].includes(line.route)) continue
    if (['RATE_LIMIT_EXCEEDED', 'TOKEN_BUDGET_EXCEEDED', 'RATE_LIMITER_UNAVAILABLE'].includes(line.error_type)) continue
    const sum = totals.get(line.user_id) ?? { requests: 0, tokens: 0, cached_requests: 0 }
    sum.requests++
    // A cache hit or a collapsed answer paid nothing: its line shows the answer's tokens.
    sum.tokens += line.cached === true || line.collapsed === true ? 0 : line.tokens_used ?? 0
    sum.cached_requests += line.cached === true ? 1 : 0
    totals.set(line.user_id, sum)
  }
  return totals
}

async function fromDatabase (url: string): Promise<Map<string, Totals>> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  client.on('error', () => {})
  await client.connect()
  try {
    const { rows } = await client.query('SELECT user_id, sum(requests)::int AS requests, sum(tokens)::int AS tokens, sum(cached_requests)::int AS cached_requests FROM ai_usage GROUP BY user_id')
    return new Map(rows.map((row) => [row.user_id as string, { requests: row.requests, tokens: row.tokens, cached_requests: row.cached_requests }]))
  } finally {
    await client.end()
  }
}

const sorted = (totals: Map<string, Totals>): Array<[string, Totals]> => [...totals].sort(([a], [b]) => a < b ? -1 : 1)

async function use (gateway: RunningService, user: string): Promise<void> {
  const headers = await bearer({ sub: user })
  const reply = await call(gateway.url, '/v1/ai/generate', { headers, body: { use_case: 'horoscope_daily', input: { sign: 'leo', user } } })
  if (reply.status !== 200) throw new Error(`generate answered ${reply.status}: ${reply.text}`)
  const stream = await openStream(gateway.url, '/v1/ai/chat', { headers, body: { messages: [{ role: 'user', content: `Hello from ${user}` }] } })
  await stream.ended
}

async function usageOf (gateway: RunningService, user: string, extra: { path?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const reply = await call(gateway.url, extra.path ?? '/v1/ai/usage', { headers: { ...(await bearer({ sub: user })), ...extra.headers } })
  return { status: reply.status, body: reply.json(), headers: reply.headers }
}

t.test('usage ledger', { skip }, async (t) => {
  const postgres = await startPostgres(t)
  if (postgres === undefined) {
    t.comment('PostgreSQL binaries not found (scripts/install-test-deps.sh installs them): skipped')
    return
  }
  const upstreamAi = await startService(t, UPSTREAM_AI_MAIN, { ENVIRONMENT: 'test', AI_PROVIDER: 'mock', OPENAI_API_KEY: undefined, MOCK_PROVIDER_LATENCY_MS: '2' })
  const env = {
    AI_UPSTREAM_URL: upstreamAi.url,
    DATABASE_URL: postgres.url,
    AI_GATEWAY_USAGE_FLUSH_MS: '50',
    AI_ENGINE_RATE_LIMIT_PER_MIN: String(LIMIT),
    AI_GATEWAY_HEALTH_CACHE_MS: '0'
  }

  await postgres.stop()
  const gateway = await startGateway(t, env)

  t.test('the gateway starts with PostgreSQL down and keeps usage in memory', async (t) => {
    await waitFor(() => gateway.logs().find((line) => line.msg === 'usage ledger: PostgreSQL unavailable; usage is kept in memory and retried'), { timeoutMs: 10_000 })
    t.equal((await call(gateway.url, '/health')).json().services.db, 'down')
    await use(gateway, 'alice')
    await use(gateway, 'bob')
    const alice = await usageOf(gateway, 'alice')
    t.equal(alice.status, 200, 'not a 500')
    t.equal(alice.body.data.ledger, 'unavailable')
    t.match(alice.body.data.usage, { requests: 2, tokens: fromLog(gateway).get('alice')!.tokens, cached_requests: 0 }, 'from memory')
  })

  t.test('a PostgreSQL restart in the middle of a run loses nothing and counts nothing twice', async (t) => {
    await postgres.start()
    await waitFor(() => gateway.logs().find((line) => line.msg === 'usage ledger ready'), { timeoutMs: 60_000, intervalMs: 100 })
    await use(gateway, 'alice')
    await use(gateway, 'bob')
    await postgres.stop()
    await use(gateway, 'alice')
    await use(gateway, 'bob')
    const outage = 'usage ledger: PostgreSQL unavailable; usage is kept in memory and retried'
    await waitFor(() => gateway.logs().filter((line) => line.msg === outage).length >= 2 ? true : undefined, { timeoutMs: 10_000, what: 'a batch to fail while PostgreSQL is down' })
    await postgres.start()
    await waitFor(() => gateway.logs().filter((line) => line.msg === 'usage ledger: PostgreSQL reachable again').length >= 2 ? true : undefined, { timeoutMs: 60_000, intervalMs: 100 })
    // dave goes past the request limit: the 429s are not usage.
    const dave = await bearer({ sub: 'dave' })
    const statuses: number[] = []
    for (let i = 0; i < LIMIT + 2; i++) statuses.push((await call(gateway.url, '/v1/ai/generate', { headers: dave, body: { use_case: 'horoscope_daily', input: { n: i } } })).status)
    t.same(statuses.filter((status) => status === 429).length, 2, 'two refused')
    const expected = fromLog(gateway)
    t.same(expected.get('dave'), { requests: LIMIT, tokens: expected.get('dave')!.tokens, cached_requests: 0 })
    const stored = await waitFor(async () => {
      const rows = await fromDatabase(postgres.url).catch(() => undefined)
      return rows !== undefined && JSON.stringify(sorted(rows)) === JSON.stringify(sorted(expected)) ? rows : undefined
    }, { timeoutMs: 60_000, intervalMs: 200, what: `the ledger to equal the completion log: ${JSON.stringify(sorted(expected))}` })
    t.same(sorted(stored), sorted(expected), 'ai_usage = the sum of settled usage in the completion log')
    t.ok([...expected.values()].every((sum) => sum.tokens > 0), 'tokens were counted')
  })

  t.test('GET /v1/ai/usage: each caller sees only their own usage', async (t) => {
    const expected = fromLog(gateway)
    const alice = await usageOf(gateway, 'alice')
    t.equal(alice.status, 200)
    t.equal(alice.headers['cache-control'], 'private, no-store')
    t.match(alice.body, {
      data: {
        user_id: 'alice',
        day: new Date().toISOString().slice(0, 10),
        ledger: 'ok',
        usage: { requests: 6, tokens: expected.get('alice')!.tokens, cached_requests: 0 },
        budgets: Array,
        rate_limit: { limit: LIMIT, window_seconds: 60 }
      },
      meta: { request_id: String }
    })
    t.same(alice.body.data.usage.by_use_case.map((row: any) => [row.use_case, row.requests]), [['chat', 3], ['horoscope_daily', 3]])
    const bob = await usageOf(gateway, 'bob')
    t.match(bob.body.data, { user_id: 'bob', usage: { requests: 6, tokens: expected.get('bob')!.tokens } })

    const forged = await usageOf(gateway, 'alice', { headers: { 'x-user-id': 'bob' } })
    t.match(forged.body.data, { user_id: 'alice', usage: { tokens: expected.get('alice')!.tokens } }, 'a forged X-User-Id switches nothing')
    const query = await usageOf(gateway, 'alice', { path: '/v1/ai/usage?user_id=bob' })
    t.equal(query.status, 400, '?user_id= is refused, not answered with someone\'s numbers')
    t.match(query.body.error, { type: 'INVALID_REQUEST', field: 'user_id' })
    const carol = await usageOf(gateway, 'carol')
    t.match(carol.body.data, { user_id: 'carol', ledger: 'ok', usage: { requests: 0, tokens: 0, cached_requests: 0, by_use_case: [] } }, 'a user with no usage sees zeros')

    const anonymous = await call(gateway.url, '/v1/ai/usage')
    t.equal(anonymous.status, 401)
    t.equal(anonymous.json().error.type, 'UNAUTHORIZED')
    const post = await call(gateway.url, '/v1/ai/usage', { headers: await bearer(), body: {} })
    t.equal(post.status, 405)
    t.equal(post.headers.allow, 'GET')

    const line = completionLines(gateway).find((entry) => entry.route === '/v1/ai/usage' && entry.user_id === 'alice')
    t.match(line, { method: 'GET', http_status: 200, status: 'success' }, 'reads are in the completion log')
    const again = await usageOf(gateway, 'alice')
    t.equal(again.body.data.usage.requests, 6, 'reading one\'s usage is not usage, nor rate limited')
  })

  t.test('the usage answer is current while PostgreSQL is down', async (t) => {
    await postgres.stop()
    await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: 'erin' }), body: { use_case: 'horoscope_daily', input: {} } })
    const erin = await usageOf(gateway, 'erin')
    t.match(erin.body.data, { ledger: 'unavailable', usage: { requests: 1 } })
    await postgres.start()
    await waitFor(async () => (await usageOf(gateway, 'erin')).body.data.ledger === 'ok' ? true : undefined, { timeoutMs: 30_000, intervalMs: 200 })
    t.match((await usageOf(gateway, 'erin')).body.data.usage, { requests: 1 }, 'and once it is back, counted once')
  })

  t.test('SIGTERM writes what is pending', async (t) => {
    const quiet = await startGateway(t, { ...env, AI_GATEWAY_USAGE_FLUSH_MS: '600000' })
    await waitFor(() => quiet.logs().find((line) => line.msg === 'usage ledger ready'), { timeoutMs: 10_000 })
    await use(quiet, 'frank')
    t.notOk((await fromDatabase(postgres.url)).has('frank'), 'not written yet')
    const expected = fromLog(quiet).get('frank')
    const exit = await quiet.stop('SIGTERM')
    t.equal(exit.code, 0)
    t.ok(quiet.logs().some((line) => line.msg === 'usage ledger: everything written'))
    t.same((await fromDatabase(postgres.url)).get('frank'), expected)
  })

  t.test('the pending cap drops new rows and logs them', async (t) => {
    const full = await startGateway(t, {
      ...env,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/postgres`,
      AI_GATEWAY_USAGE_MAX_PENDING_ROWS: '1'
    })
    await call(full.url, '/v1/ai/generate', { headers: await bearer({ sub: 'gina' }), body: { use_case: 'horoscope_daily', input: {} } })
    await call(full.url, '/v1/ai/generate', { headers: await bearer({ sub: 'hal' }), body: { use_case: 'horoscope_daily', input: {} } })
    const report = await waitFor(() => full.logs().find((line) => line.msg === 'usage ledger full: usage dropped'), { timeoutMs: 10_000 })
    t.match(report, { level: 'error', dropped_requests: 1, dropped_tokens: Number, max_pending_rows: 1 })
    const metrics = (await call(full.url, '/metrics')).text
    t.match(metrics, /^ai_gateway_usage_dropped_requests_total 1$/m)
    t.match(metrics, /^ai_gateway_usage_pending_rows 1$/m)
    t.match((await usageOf(full, 'gina')).body.data, { ledger: 'unavailable', usage: { requests: 1 } })
  })

  t.test('without DATABASE_URL the ledger is disabled', async (t) => {
    const off = await startGateway(t, { ...env, DATABASE_URL: undefined })
    t.ok(off.logs().some((line) => line.msg === 'DATABASE_URL is unset: the usage ledger is off'))
    await call(off.url, '/v1/ai/generate', { headers: await bearer({ sub: 'ivy' }), body: { use_case: 'horoscope_daily', input: {} } })
    const ivy = await usageOf(off, 'ivy')
    t.equal(ivy.status, 200)
    t.match(ivy.body.data, { user_id: 'ivy', ledger: 'disabled', usage: null, budgets: [], rate_limit: { limit: LIMIT } })
  })
})
