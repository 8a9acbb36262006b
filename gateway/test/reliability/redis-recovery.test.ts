// Scenarios 7 and 8, Redis emptied under the gateway (FLUSHALL + SCRIPT FLUSH live, then a restart with nothing in it) and Redis flapping down and up four times under load: NOSCRIPT handled without a fallback, reconnection without restarting the gateway, a switch back after every flap, and one decision per request (one upstream call per allowed request, no replayed count).
import t from 'tap'
import { sleep, waitFor } from '../../../common/testkit/ports.js'
import { startRedis } from '../../../common/testkit/redis.js'
import { FAILOVER_LOG_MESSAGES } from '../../src/ratelimit/failover-limiter.js'
import { bearer, call, startGateway, type Reply } from '../helpers/gateway.js'
import { answerGenerate, generateBody } from '../helpers/generate.js'
import { logLines, respInteger, settledCount, startLoad, statuses } from '../helpers/reliability.js'
import { startUpstream } from '../helpers/upstream.js'

const fallbackLine = (line: Record<string, unknown>): boolean => line.msg === FAILOVER_LOG_MESSAGES.fallback && line.level === 'warn'
const recoveredLine = (line: Record<string, unknown>): boolean => line.msg === FAILOVER_LOG_MESSAGES.recovered && line.level === 'info'

t.test('scenario 7: flushed live, then restarted empty', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '50', AI_ENGINE_REDIS_TIMEOUT_MS: '500' })
  await waitFor(() => logLines(gateway, 'redis connected').length > 0 ? true : undefined, { timeoutMs: 5000, what: 'redis connected' })
  const auth = await bearer({ sub: 'flush-user' })
  const generate = async (): Promise<Reply> => await call(gateway.url, '/v1/ai/generate', { headers: auth, body: generateBody() })

  t.equal((await generate()).headers['x-ratelimit-remaining'], '49')
  t.equal((await generate()).headers['x-ratelimit-remaining'], '48')
  t.match(await redis.command('FLUSHALL'), /^\+OK/)
  t.match(await redis.command('SCRIPT', 'FLUSH'), /^\+OK/)
  const afterFlush = await generate()
  t.equal(afterFlush.status, 200, 'answered after FLUSHALL + SCRIPT FLUSH')
  t.equal(afterFlush.headers['x-ratelimit-remaining'], '49', 'counted in the emptied Redis: a fresh window')
  t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{flush-user}')), 1, 'ZCARD 1')
  t.match(await redis.command('INFO', 'errorstats'), /errorstat_NOSCRIPT:count=1\r\n/, 'one EVALSHA refused with NOSCRIPT, answered by reloading the script')
  t.equal(gateway.logs().filter(fallbackLine).length, 0, 'no switch to the fallback for a NOSCRIPT')

  await redis.restart()
  // Whatever the first requests meet (a reconnecting client: the fallback; a connected one: NOSCRIPT), each is answered.
  const during: Reply[] = []
  await waitFor(async () => {
    during.push(await generate())
    return respInteger(await redis.command('EXISTS', 'ai_ratelimit:{flush-user}')) === 1 ? true : undefined
  }, { timeoutMs: 15_000, intervalMs: 100, what: 'the limiter counting in the restarted Redis' })
  t.same(statuses(during.map((reply) => ({ status: reply.status, ms: 0, at: 0, reply }))), { 200: during.length }, `${during.length} requests across the restart, all 200`)
  t.equal(gateway.child.exitCode, null, 'the same gateway process throughout')
  t.equal(gateway.logs().filter(fallbackLine).length, gateway.logs().filter(recoveredLine).length, 'every switch to the fallback was followed by one back')
  const zcard = respInteger(await redis.command('ZCARD', 'ai_ratelimit:{flush-user}'))
  const next = await generate()
  t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{flush-user}')), zcard + 1, 'the next request counted once, in the new Redis')
  t.equal(next.headers['x-ratelimit-remaining'], String(50 - zcard - 1))
})

t.test('scenario 8: Redis flapping down and up four times under load', async (t) => {
  const CYCLES = 4
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate({ delayMs: 2 }))
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '10000', AI_ENGINE_REDIS_TIMEOUT_MS: '200'
  })
  await waitFor(() => logLines(gateway, 'redis connected').length > 0 ? true : undefined, { timeoutMs: 5000, what: 'redis connected' })
  const load = startLoad(gateway.url, { workers: 4, userPrefix: 'flap' })
  await sleep(300)
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    await redis.stop()
    await waitFor(() => gateway.logs().filter(fallbackLine).length >= cycle ? true : undefined, { timeoutMs: 5000, what: `switch ${cycle} to the fallback` })
    await sleep(200)
    await redis.restart()
    await waitFor(() => gateway.logs().filter(recoveredLine).length >= cycle ? true : undefined, { timeoutMs: 15_000, what: `switch ${cycle} back to Redis` })
    await sleep(200)
  }
  const samples = await load.stop()
  t.ok(samples.length > 100, `${samples.length} requests across ${CYCLES} flaps`)
  t.same(statuses(samples), { 200: samples.length }, 'all 200: no 5xx, no 429')
  t.equal(await settledCount(gateway, fallbackLine, 'fallback lines'), CYCLES, `${CYCLES} switches to the fallback, one per outage`)
  t.equal(await settledCount(gateway, recoveredLine, 'recovered lines'), CYCLES, `${CYCLES} switches back, one per return`)
  // One decision per request: one set of rate-limit headers, one upstream call per allowed request (nothing retried, nothing replayed).
  t.ok(samples.every(({ reply }) => /^\d+$/.test(String(reply.headers['x-ratelimit-remaining']))), 'each answer carries exactly one X-RateLimit-Remaining')
  t.equal(upstream.requests.length, samples.length, 'exactly one upstream call per request')
  // Back on Redis for good: each request counted exactly once there.
  const auth = await bearer({ sub: 'after-flapping' })
  for (let i = 1; i <= 5; i++) {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: generateBody() })
    t.equal(reply.headers['x-ratelimit-remaining'], String(10_000 - i))
    t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{after-flapping}')), i, `request ${i}: ZCARD ${i}`)
  }
})
