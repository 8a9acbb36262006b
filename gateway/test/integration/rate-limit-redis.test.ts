// Rate limiting on a real redis-server through built gateway processes: a burst of 200 concurrent requests of one user across two replicas lets exactly N through (ZCARD = N); Redis killed mid-load → no 5xx, no slow request, the memory fallback enforces the limit (one warning), Redis restarted → back on it (one info line); failure modes open and closed.
import t from 'tap'
import { sleep, waitFor } from '../../../common/testkit/ports.js'
import type { RunningService } from '../../../common/testkit/process.js'
import { startRedis } from '../../../common/testkit/redis.js'
import { FAILOVER_LOG_MESSAGES } from '../../src/ratelimit/index.js'
import { startUpstream } from '../helpers/upstream.js'
import { bearer, call, startGateway, type Reply } from '../helpers/gateway.js'
import { answerGenerate, generateBody, statusCounts } from '../helpers/generate.js'

/** AI_ENGINE_REDIS_TIMEOUT_MS in these tests (the default). */
const REDIS_TIMEOUT_MS = 100
/** Generous: a whole request through a gateway process, on a machine shared with other test files. */
const MARGIN_MS = 900

const generate = async (baseUrl: string, user: string): Promise<Reply> =>
  await call(baseUrl, '/v1/ai/generate', { headers: await bearer({ sub: user }), body: generateBody() })

async function timedGenerate (baseUrl: string, user: string): Promise<{ reply: Reply; ms: number }> {
  const auth = await bearer({ sub: user })
  const started = performance.now()
  const reply = await call(baseUrl, '/v1/ai/generate', { headers: auth, body: generateBody() })
  return { reply, ms: performance.now() - started }
}

const linesWithMsg = (gateway: RunningService, msg: string, level: string): number =>
  gateway.logs().filter((line) => line.msg === msg && line.level === level).length

/** The number of such lines once at least one is out (pino writes asynchronously), after a moment for any duplicate to show. */
async function settledLines (gateway: RunningService, msg: string, level: string): Promise<number> {
  await waitFor(() => linesWithMsg(gateway, msg, level) > 0 ? true : undefined, { timeoutMs: 10_000, what: `log line "${msg}"` })
  await sleep(100)
  return linesWithMsg(gateway, msg, level)
}

/** The integer in a RESP integer reply (":20\r\n"). */
const respInteger = (reply: string): number => Number(/^:(-?\d+)\r\n$/.exec(reply)?.[1] ?? NaN)

t.test('exactness: 200 concurrent requests of one user across two gateways sharing Redis let exactly N through', async (t) => {
  const N = 20
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const env = { AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_RATE_LIMIT_PER_MIN: String(N), AI_ENGINE_REDIS_TIMEOUT_MS: '2000' }
  const [one, two] = await Promise.all([startGateway(t, env), startGateway(t, env)])
  t.match(one.logs().find((line) => line.msg === 'rate limiting'), { store: 'redis' })
  // Both replicas connected before the burst, so every check goes to Redis.
  await Promise.all([one, two].map(async (gateway) => await waitFor(() => gateway.logs().some((line) => line.msg === 'redis connected') ? true : undefined, { timeoutMs: 5000, what: 'redis connected' })))

  const auth = await bearer({ sub: 'burst-user' })
  const replies = await Promise.all(Array.from({ length: 200 }, async (_, i) =>
    await call((i % 2 === 0 ? one : two).url, '/v1/ai/generate', { headers: auth, body: generateBody() })))
  t.same(statusCounts(replies), { 200: N, 429: 200 - N }, `exactly ${N} allowed`)
  t.ok(replies.filter((reply) => reply.status === 429).every((reply) => reply.json().error.type === 'RATE_LIMIT_EXCEEDED'))
  t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{burst-user}')), N, 'ZCARD = N: denied requests are not stored')
  // ZCARD = N allowed means no two allowed requests collapsed into one member; how many shared a millisecond this run:
  const members = (await redis.command('ZRANGE', 'ai_ratelimit:{burst-user}', '0', '-1')).split('\r\n').filter((line) => /^\d+-\d+$/.test(line))
  t.equal(new Set(members).size, N, 'N distinct members')
  t.comment(`${members.length - new Set(members.map((member) => member.split('-')[0]!.slice(0, -3))).size} of ${N} members share a millisecond with another`)
  t.equal(upstream.requests.length, N, 'upstream-ai saw only the allowed requests')
  const other = await generate(one.url, 'other-user')
  t.equal(other.status, 200, 'another user is unaffected')
  t.equal(other.headers['x-ratelimit-remaining'], String(N - 1))

  const gatewayClients = async (): Promise<number> => (await redis.command('CLIENT', 'LIST')).split('\n').filter((line) => line.includes('name=ai-gateway')).length
  t.equal(await gatewayClients(), 2, 'one Redis connection per gateway process')
  const { code } = await one.stop('SIGTERM')
  t.equal(code, 0, 'a clean shutdown')
  t.notOk(one.logs().some((line) => line.msg === 'closer failed'), 'every closer closed')
  t.equal(await waitFor(async () => (await gatewayClients()) === 1 ? 1 : undefined, { timeoutMs: 2000, what: 'the connection closed' }), 1, 'its Redis connection closed on shutdown')
})

t.test('failure mode memory: Redis killed mid-load, then restarted', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '5', AI_ENGINE_REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS)
  })
  await waitFor(() => gateway.logs().some((line) => line.msg === 'redis connected') ? true : undefined, { timeoutMs: 5000, what: 'redis connected' })
  t.equal((await generate(gateway.url, 'before')).status, 200)
  t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{before}')), 1, 'counted in Redis')

  // Load: four users, one request after another each, while Redis dies.
  let loading = true
  const seen: Array<{ status: number; ms: number }> = []
  const load = Promise.all(Array.from({ length: 4 }, async (_, worker) => {
    while (loading) {
      const { reply, ms } = await timedGenerate(gateway.url, `load-${worker}`)
      seen.push({ status: reply.status, ms })
    }
  }))
  await sleep(200)
  await redis.stop()
  await sleep(400)

  // A fresh user during the outage: the memory fallback enforces the same limit.
  const outage: number[] = []
  for (let i = 0; i < 7; i++) {
    const { reply, ms } = await timedGenerate(gateway.url, 'during-outage')
    outage.push(reply.status)
    seen.push({ status: reply.status, ms })
  }
  loading = false
  await load
  t.same(outage, [200, 200, 200, 200, 200, 429, 429], 'memory fallback: 5 allowed, then denied')
  t.ok(seen.length > 10, `${seen.length} requests during the outage`)
  t.same(seen.filter(({ status }) => status >= 500), [], 'no 5xx')
  const slowest = Math.max(...seen.map(({ ms }) => ms))
  t.ok(slowest < REDIS_TIMEOUT_MS + MARGIN_MS, `slowest request ${slowest.toFixed(0)} ms (< Redis timeout + ${MARGIN_MS} ms)`)
  t.equal(await settledLines(gateway, FAILOVER_LOG_MESSAGES.fallback, 'warn'), 1, 'one warning for the switch')

  await redis.restart()
  t.equal(await settledLines(gateway, FAILOVER_LOG_MESSAGES.recovered, 'info'), 1, 'one info line when Redis is back')
  t.equal((await generate(gateway.url, 'after')).status, 200)
  t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{after}')), 1, 'counted in Redis again')
  t.equal(linesWithMsg(gateway, FAILOVER_LOG_MESSAGES.fallback, 'warn'), 1, 'still one warning')
})

t.test('failure modes open and closed while Redis is down', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const env = { AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '2' }
  const [open, closed] = await Promise.all([
    startGateway(t, { ...env, AI_ENGINE_RATE_LIMIT_FAILURE_MODE: 'open' }),
    startGateway(t, { ...env, AI_ENGINE_RATE_LIMIT_FAILURE_MODE: 'closed' })
  ])
  await Promise.all([open, closed].map(async (gateway) => await waitFor(() => gateway.logs().some((line) => line.msg === 'redis connected') ? true : undefined, { timeoutMs: 5000, what: 'redis connected' })))
  t.equal((await generate(closed.url, 'closed-user')).status, 200, 'closed: allowed while Redis answers')
  await redis.stop()
  await sleep(200)

  for (let i = 0; i < 5; i++) {
    const { reply, ms } = await timedGenerate(open.url, 'open-user')
    t.equal(reply.status, 200, `open: request ${i + 1} passes (limit 2)`)
    t.equal(reply.headers['x-ratelimit-limit'], undefined, 'no quota applied, no headers')
    t.ok(ms < REDIS_TIMEOUT_MS + MARGIN_MS, `answered in ${ms.toFixed(0)} ms`)
  }

  const before = upstream.requests.length
  const { reply, ms } = await timedGenerate(closed.url, 'closed-user')
  t.equal(reply.status, 503)
  t.equal(reply.json().error.type, 'RATE_LIMITER_UNAVAILABLE')
  t.ok(reply.json().error.retry_after_ms > 0)
  t.ok(Number(reply.headers['retry-after']) >= 1, 'Retry-After')
  t.equal(reply.headers['x-ratelimit-limit'], undefined)
  t.ok(ms < REDIS_TIMEOUT_MS + MARGIN_MS, `answered in ${ms.toFixed(0)} ms`)
  t.equal(upstream.requests.length, before, 'closed: upstream-ai not called')
  t.equal(await settledLines(closed, FAILOVER_LOG_MESSAGES.fallback, 'warn'), 1, 'one warning')

  await redis.restart()
  await waitFor(async () => (await generate(closed.url, 'closed-back')).status === 200 ? true : undefined, { timeoutMs: 10_000, intervalMs: 200, what: 'closed gateway back on Redis' })
  t.pass('closed: back by itself once Redis is')
})
