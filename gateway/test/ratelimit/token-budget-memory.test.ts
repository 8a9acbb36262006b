// Token budgets in memory (fake clocks), the failover to memory while Redis is down, and the token headers and 429 envelope.
import t, { type Test } from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { createFailoverLimiter, SETTLE_FAILED_LOG_MESSAGE } from '../../src/ratelimit/failover-limiter.js'
import { admissionHeaders, tokenDeniedError } from '../../src/ratelimit/headers.js'
import { createRateLimiter, type FailureMode } from '../../src/ratelimit/index.js'
import { createMemoryLimiter } from '../../src/ratelimit/memory-limiter.js'
import { createMemoryTokenLimiter } from '../../src/ratelimit/memory-token-limiter.js'
import { createRedisTokenLimiter } from '../../src/ratelimit/redis-token-limiter.js'
import { estimateTokens } from '../../src/ratelimit/token-estimate.js'
import { captureLogs, readyClient } from './fixtures/setup.js'

function fakeClocks (startWall = Date.UTC(2025, 0, 1, 12)) {
  let now = 0
  return { clock: () => now, wallClock: () => startWall + now, advance: (ms: number) => { now += ms } }
}

t.test('memory: exact budget, settle frees, window edge, retry-after', async (t) => {
  const clocks = fakeClocks()
  const limiter = createMemoryTokenLimiter({ tokens: { perMinute: 300, perDay: undefined }, requests: undefined, ...clocks })
  const allowed = await Promise.all(Array.from({ length: 10 }, async () => await limiter.admit('u', 100)))
  t.equal(allowed.filter((admission) => admission.reservation !== undefined).length, 3)
  const refused = await limiter.admit('u', 100)
  t.match(refused, { request: undefined, reservation: undefined, tokens: { allowed: false, deniedBy: { window: 'minute' }, retryAfterMs: 60_000 } })
  await limiter.settle(allowed[0]!.reservation!, 20)
  clocks.advance(1000)
  t.ok((await limiter.admit('u', 80)).reservation !== undefined, 'the settle freed 80')
  clocks.advance(58_999)
  t.equal((await limiter.admit('u', 1)).tokens?.allowed, false, 'still in the window')
  clocks.advance(1)
  t.match(await limiter.budgets('u'), [{ window: 'minute', used: 80, remaining: 220 }], 'the first three left at exactly t + 60 s')
})

t.test('memory: daily budget on the UTC day; the request limit in the same step', async (t) => {
  const clocks = fakeClocks(Date.UTC(2025, 0, 1, 23, 59, 0))
  const requests = createMemoryLimiter({ limit: 2, windowMs: 1000, clock: clocks.clock })
  const limiter = createMemoryTokenLimiter({ tokens: { perMinute: undefined, perDay: 150 }, requests, ...clocks })
  t.match(await limiter.admit('d', 100), { request: { allowed: true, remaining: 1, source: 'memory' } })
  const refused = await limiter.admit('d', 100)
  t.match(refused.tokens, { allowed: false, deniedBy: { window: 'day' }, retryAfterMs: 60_000 }, 'retry at UTC midnight')
  t.match(await limiter.admit('d', 10), { request: { allowed: true, remaining: 0 } }, 'the token refusal was not counted as a request')
  t.match(await limiter.admit('d', 10), { request: { allowed: false }, reservation: undefined })
  t.match(await limiter.budgets('d'), [{ window: 'day', used: 110 }], 'the request refusal reserved nothing')
  clocks.advance(60_000)
  t.match(await limiter.budgets('d'), [{ window: 'day', used: 0, remaining: 150 }], 'a new UTC day')
})

t.test('memory: users are bounded', async (t) => {
  const limiter = createMemoryTokenLimiter({ tokens: { perMinute: 10, perDay: undefined }, requests: undefined, maxUsers: 50, ...fakeClocks() })
  for (let i = 0; i < 5000; i++) await limiter.admit(`user-${i}`, 1)
  t.ok(limiter.trackedUsers() <= 50, `${limiter.trackedUsers()} users tracked`)
})

t.test('estimate: ceil(body bytes / 4) + max_tokens, else the default', async (t) => {
  const raw = Buffer.from(JSON.stringify({ input: 'é'.repeat(10), options: { max_tokens: 300 } }))
  t.same(estimateTokens({ raw, json: JSON.parse(raw.toString()) as Record<string, unknown> }, 1024), { prompt: Math.ceil(raw.length / 4), total: Math.ceil(raw.length / 4) + 300 })
  const plain = Buffer.from('{"input":"x","options":{"max_tokens":"lots"}}')
  t.equal(estimateTokens({ raw: plain, json: JSON.parse(plain.toString()) as Record<string, unknown> }, 1024).total, Math.ceil(plain.length / 4) + 1024)
})

t.test('headers and the 429 envelope of a token refusal', async (t) => {
  const limiter = createMemoryTokenLimiter({ tokens: { perMinute: 100, perDay: 1000 }, requests: createMemoryLimiter({ limit: 5, windowMs: 60_000 }), ...fakeClocks() })
  const windows = { minuteMs: 60_000, dayMs: 86_400_000 }
  const allowed = await limiter.admit('h', 60)
  const headers = admissionHeaders(allowed, 60_000, windows)
  t.equal(headers['RateLimit-Policy'], '"default";q=5;w=60, "tokens-minute";q=100;w=60;qu="tokens", "tokens-day";q=1000;w=86400;qu="tokens"')
  t.match(headers.RateLimit, /^"default";r=4;t=60, "tokens-minute";r=40;t=60, "tokens-day";r=940;t=\d+$/)
  t.equal(headers['X-RateLimit-Remaining'], '4')
  const refused = await limiter.admit('h', 60)
  const refusedHeaders = admissionHeaders(refused, 60_000, windows)
  t.equal(refusedHeaders['Retry-After'], '60')
  t.equal(refusedHeaders['X-RateLimit-Limit'], undefined, 'the request was not counted: no request headers')
  t.match(refusedHeaders.RateLimit, /^"tokens-minute";r=40;t=60, "tokens-day";r=940;t=\d+$/)
  const error = tokenDeniedError(refused.tokens!, refusedHeaders)
  t.match(error, { type: 'TOKEN_BUDGET_EXCEEDED', status: 429, extra: { retry_after_ms: 60_000, budget: 'minute', tokens_requested: 60 } })
  t.equal(error.headers, refusedHeaders)
})

/** A failover limiter (10 requests, `perMinute` tokens a minute) on a real redis-server the test can stop. */
async function failoverOnRedis (t: Test, failureMode: FailureMode, perMinute: number) {
  const server = await startRedis(t)
  const logs = captureLogs()
  const redis = await readyClient(t, server, { commandTimeoutMs: 100, logger: logs.logger })
  const tokens = { perMinute, perDay: undefined }
  const memory = createMemoryLimiter({ limit: 10, windowMs: 60_000 })
  const limiter = createFailoverLimiter({
    redis,
    limit: 10,
    windowMs: 60_000,
    failureMode,
    timeoutMs: 100,
    probeIntervalMs: 100,
    logger: logs.logger,
    fallback: memory,
    tokens: {
      primary: createRedisTokenLimiter({ redis, requestLimit: 10, windowMs: 60_000, tokens }),
      fallback: createMemoryTokenLimiter({ tokens, requests: memory })
    },
    settleTimeoutMs: 200
  })
  t.teardown(async () => { await limiter.close() })
  return { server, logs, limiter }
}

t.test('Redis down: token budgets fall back to memory; a Redis reservation that cannot be settled is logged and counted', async (t) => {
  const { server, logs, limiter } = await failoverOnRedis(t, 'memory', 250)
  const onRedis = await limiter.admit('f', 100)
  t.equal(onRedis.reservation?.source, 'redis')
  await server.stop()
  const first = await limiter.admit('f', 100)
  t.equal(first.reservation?.source, 'memory', 'answered from memory')
  t.equal(limiter.state(), 'fallback')
  await limiter.admit('f', 100)
  t.equal((await limiter.admit('f', 100)).tokens?.allowed, false, 'the memory budget holds: 2 × 100 of 250')
  t.match(await limiter.tokenBudgets('f'), [{ window: 'minute', used: 200 }], 'the usage read comes from memory too')
  limiter.settle(onRedis.reservation!, 10)
  limiter.settle(first.reservation!, 0)
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(limiter.settleFailures(), 1, 'the Redis settle failed, and was counted')
  t.equal(logs.withMsg(SETTLE_FAILED_LOG_MESSAGE, 'warn').length, 1, 'one warning')
  t.match(await limiter.tokenBudgets('f'), [{ used: 100 }], 'the memory settle applied')
})

t.test('createRateLimiter: token budgets alone (request limit off) still admit, with no request headers', async (t) => {
  const limiter = createRateLimiter({ enabled: false, tokens: { perMinute: 100, perDay: undefined }, logger: captureLogs().logger })
  t.equal(limiter.tokenBudgetsOn, true)
  t.equal(limiter.state(), 'memory')
  const admission = await limiter.admit('solo', 80)
  t.match(admission, { request: { allowed: true, source: 'none' }, tokens: { allowed: true } })
  t.equal((await limiter.admit('solo', 80)).tokens?.allowed, false)
  const off = createRateLimiter({ logger: captureLogs().logger })
  t.equal(off.tokenBudgetsOn, false)
  t.same(await off.tokenBudgets('x'), [])
  await limiter.close()
  await off.close()
})

for (const failureMode of ['open', 'closed'] as const) {
  t.test(`Redis down, failure mode ${failureMode}: token budgets follow the request limiter's mode`, async (t) => {
    const { server, limiter } = await failoverOnRedis(t, failureMode, 150)
    t.equal((await limiter.admit('m', 100)).reservation?.source, 'redis')
    await server.stop()
    const during = await Promise.all([limiter.admit('m', 100), limiter.admit('m', 100), limiter.admit('m', 100)])
    if (failureMode === 'open') {
      t.ok(during.every((admission) => admission.request?.allowed === true && admission.tokens?.allowed !== false), 'open: every request admitted, 3 × 100 over a budget of 150')
      t.ok(during.every((admission) => admission.reservation === undefined), 'open: nothing reserved, so nothing to settle')
    } else {
      t.ok(during.every((admission) => admission.request !== undefined && !admission.request.allowed && 'unavailable' in admission.request && admission.request.unavailable === true),
        'closed: every request refused as unavailable (503)')
      t.ok(during.every((admission) => admission.reservation === undefined), 'closed: nothing reserved')
    }
    t.same(await limiter.tokenBudgets('m'), [], 'no budget figures while neither Redis nor memory keeps them')
  })
}
