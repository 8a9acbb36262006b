// Token budgets through the built gateway on a real redis-server: concurrent requests held to the per-minute budget exactly, settle-down frees budget, an aborted stream settles to its partial usage, cache hits are free, the daily budget, the 429 envelope and headers.
import t, { type Test } from 'tap'
import { waitFor } from '../../../common/testkit/ports.js'
import type { RunningService } from '../../../common/testkit/process.js'
import { startRedis, type RedisServer } from '../../../common/testkit/redis.js'
import { startUpstream, type Behaviour } from '../helpers/upstream.js'
import { bearer, call, completionLine, openStream, startGateway } from '../helpers/gateway.js'
import { answerGenerate, generateBody, statusCounts } from '../helpers/generate.js'

/** The tokens a body reserves: ceil(body bytes / 4) + max_tokens (docs/rate-limiting.md). */
const estimateOf = (body: unknown, maxTokens: number): number => Math.ceil(Buffer.byteLength(JSON.stringify(body)) / 4) + maxTokens

/** The user's minute reservations, summed, straight from Redis. */
async function minuteUsed (redis: RedisServer, user: string): Promise<number> {
  const reply = await redis.command('HVALS', `ai_tokens:{${user}}:minute:tokens`)
  return reply.split('\r\n').filter((line) => /^\d+$/.test(line)).reduce((sum, value) => sum + Number(value), 0)
}

/** A gateway with REDIS_URL, once its client is connected: a request before that would be answered by the memory fallback. */
async function startRedisGateway (t: Test, env: Record<string, string>): Promise<RunningService> {
  const gateway = await startGateway(t, { AI_ENGINE_REDIS_TIMEOUT_MS: '2000', ...env })
  await waitFor(() => gateway.logs().some((line) => line.msg === 'redis connected') ? true : undefined, { timeoutMs: 10_000, what: 'redis connected' })
  return gateway
}

const waitForUsed = async (redis: RedisServer, user: string, expected: number): Promise<void> => {
  await waitFor(async () => await minuteUsed(redis, user) === expected ? true : undefined, { timeoutMs: 10_000, what: `${user}'s minute budget at ${expected}` })
}

t.test('20 concurrent requests against a budget that fits exactly 5: exactly 5 pass; settling down to the real usage frees budget', async (t) => {
  const redis = await startRedis(t)
  // A delay so every request is admitted before any answer settles.
  const upstream = await startUpstream(t, answerGenerate({ delayMs: 300 }))
  const body = generateBody('leo', { options: { max_tokens: 100 } })
  const estimate = estimateOf(body, 100)
  const gateway = await startRedisGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_URL: redis.url,
    AI_ENGINE_REDIS_TIMEOUT_MS: '2000',
    AI_ENGINE_RATE_LIMIT_PER_MIN: '1000',
    AI_ENGINE_TOKEN_LIMIT_PER_MIN: String(5 * estimate)
  })
  t.match(gateway.logs().find((line) => line.msg === 'rate limiting'), { token_limit_per_min: 5 * estimate, token_limit_per_day: null, token_estimate_default_max_tokens: 1024 })
  const auth = await bearer({ sub: 'burst' })
  const replies = await Promise.all(Array.from({ length: 20 }, async () => await call(gateway.url, '/v1/ai/generate', { headers: auth, body })))
  t.same(statusCounts(replies), { 200: 5, 429: 15 })
  t.equal(upstream.requests.length, 5, 'upstream-ai saw only the admitted requests')

  const denied = replies.find((reply) => reply.status === 429)!
  t.match(denied.json().error, { type: 'TOKEN_BUDGET_EXCEEDED', budget: 'minute', tokens_requested: estimate })
  t.ok(denied.json().error.retry_after_ms > 0 && denied.json().error.retry_after_ms <= 60_000, 'retry_after_ms within the window')
  t.equal(denied.headers['retry-after'], String(Math.ceil(denied.json().error.retry_after_ms / 1000)))
  t.equal(denied.headers['ratelimit-policy'], `"tokens-minute";q=${5 * estimate};w=60;qu="tokens"`)
  t.match(denied.headers.ratelimit, /^"tokens-minute";r=0;t=\d+$/)
  t.equal(denied.headers['x-ratelimit-limit'], undefined, 'a token refusal is not counted as a request')
  t.equal(Number((await redis.command('ZCARD', 'ai_ratelimit:{burst}')).match(/\d+/)?.[0]), 5, 'only the 5 admitted are counted as requests')

  const ok = replies.find((reply) => reply.status === 200)!
  t.match(ok.headers['ratelimit-policy'], `"default";q=1000;w=60, "tokens-minute";q=${5 * estimate};w=60;qu="tokens"`)
  // Each answer used 15 tokens (usage.total_tokens): the reservations settle down to that.
  await waitForUsed(redis, 'burst', 5 * 15)
  const after = await call(gateway.url, '/v1/ai/generate', { headers: auth, body })
  t.equal(after.status, 200, 'the freed budget admits another request')
})

/** An upstream chat stream: `deltas` delta events of `text`, then hang (the client leaves) or a done event. */
function chatStream (deltas: number, text: string, then: 'hang' | 'done'): Behaviour {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' })
    for (let i = 0; i < deltas; i++) res.write(`event: delta\ndata: ${JSON.stringify({ text })}\n\n`)
    if (then === 'done') res.end(`event: done\ndata: ${JSON.stringify({ usage: { total_tokens: 42 }, meta: {} })}\n\n`)
  }
}

t.test('an aborted stream settles to its partial usage; a complete one to its done event', async (t) => {
  const redis = await startRedis(t)
  let behaviour: Behaviour = chatStream(3, 'x'.repeat(40), 'hang')
  const upstream = await startUpstream(t, async (req, res, received) => { await behaviour(req, res, received) })
  const gateway = await startRedisGateway(t, {
    AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_REDIS_TIMEOUT_MS: '2000', AI_ENGINE_TOKEN_LIMIT_PER_MIN: '100000'
  })
  const body = { messages: [{ role: 'user', content: 'Tell me about Leo.' }] }
  const prompt = Math.ceil(Buffer.byteLength(JSON.stringify(body)) / 4)
  const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: { ...await bearer({ sub: 'streamer' }), 'x-request-id': 'cut-stream' }, body })
  await stream.waitForEvents(3)
  await waitForUsed(redis, 'streamer', prompt + 1024)
  stream.req.destroy()
  // 3 deltas of 40 characters: ceil(120 / 4) = 30 tokens of answer, on top of the prompt estimate.
  await waitForUsed(redis, 'streamer', prompt + 30)
  t.match(await completionLine(gateway, 'cut-stream'), { tokens_used: prompt + 30, client_aborted: true }, 'the completion log shows the settled amount')

  behaviour = chatStream(2, 'y'.repeat(8), 'done')
  const complete = await call(gateway.url, '/v1/ai/chat', { headers: { ...await bearer({ sub: 'finisher' }), 'x-request-id': 'full-stream' }, body })
  t.equal(complete.status, 200)
  await waitForUsed(redis, 'finisher', 42)
  t.match(await completionLine(gateway, 'full-stream'), { tokens_used: 42 })
})

t.test('cache hits cost no tokens; the daily budget', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const body = generateBody('virgo', { options: { max_tokens: 50 } })
  const estimate = estimateOf(body, 50)
  const gateway = await startRedisGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_URL: redis.url,
    AI_ENGINE_REDIS_TIMEOUT_MS: '2000',
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_ENGINE_TOKEN_LIMIT_PER_MIN: '100000',
    // Room for one estimate and the settled 15 of a first answer, not for a second estimate on top.
    AI_ENGINE_TOKEN_LIMIT_PER_DAY: String(estimate + 10)
  })
  const auth = await bearer({ sub: 'cached' })
  const miss = await call(gateway.url, '/v1/ai/generate', { headers: auth, body })
  t.equal(miss.headers['x-cache'], 'MISS')
  await waitForUsed(redis, 'cached', 15)
  t.equal(await redis.command('HGET', 'ai_tokens:{cached}:day', 'used'), '$2\r\n15\r\n', 'the day holds the settled 15')
  const dayDenied = await call(gateway.url, '/v1/ai/generate', { headers: auth, body })
  t.equal(dayDenied.status, 429, 'the day cannot hold another estimate, even for what would be a hit: the check runs before the cache')
  t.match(dayDenied.json().error, { type: 'TOKEN_BUDGET_EXCEEDED', budget: 'day' })
  t.match(dayDenied.headers['ratelimit-policy'], /"tokens-day";q=\d+;w=86400;qu="tokens"/)

  // Another user with room: the hit is admitted, then settled at 0.
  const other = await bearer({ sub: 'hitter' })
  const hit = await call(gateway.url, '/v1/ai/generate', { headers: { ...other, 'x-request-id': 'the-hit' }, body })
  t.equal(hit.headers['x-cache'], 'HIT')
  await waitForUsed(redis, 'hitter', 0)
  t.equal(await redis.command('HGET', 'ai_tokens:{hitter}:day', 'used'), '$1\r\n0\r\n', 'a hit costs nothing that day either')
  t.equal(upstream.requests.length, 1)
})

t.test('with token budgets, the body is read before the check: a refused body reserves nothing', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startRedisGateway(t, {
    AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_REDIS_TIMEOUT_MS: '2000', AI_ENGINE_RATE_LIMIT_PER_MIN: '2', AI_ENGINE_TOKEN_LIMIT_PER_MIN: '100000'
  })
  const auth = await bearer({ sub: 'bad-body' })
  for (let i = 0; i < 3; i++) {
    const refused = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: { use_case: 42 } })
    t.equal(refused.status, 400)
  }
  t.equal(await redis.command('EXISTS', 'ai_ratelimit:{bad-body}'), ':0\r\n', 'no request counted')
  t.equal((await call(gateway.url, '/v1/ai/generate', { headers: auth, body: generateBody() })).status, 200)
})

t.test('GET /v1/ai/usage shows the caller\'s own budgets: what is used and what remains', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startRedisGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_URL: redis.url,
    AI_ENGINE_TOKEN_LIMIT_PER_MIN: '1000',
    AI_ENGINE_TOKEN_LIMIT_PER_DAY: '5000'
  })
  const budgetsOf = async (user: string): Promise<any[]> => {
    const reply = await call(gateway.url, '/v1/ai/usage', { headers: await bearer({ sub: user }) })
    t.equal(reply.status, 200)
    return reply.json().data.budgets
  }
  t.match(await budgetsOf('spender'), [{ window: 'minute', limit: 1000, used: 0, remaining: 1000 }, { window: 'day', limit: 5000, used: 0, remaining: 5000 }], 'nothing used yet')

  const reply = await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: 'spender' }), body: generateBody('leo', { options: { max_tokens: 100 } }) })
  t.equal(reply.status, 200)
  // The answer used 15 tokens: once settled, both budgets show 15 used.
  await waitForUsed(redis, 'spender', 15)
  const [minute, day] = await budgetsOf('spender')
  t.match(minute, { window: 'minute', limit: 1000, used: 15, remaining: 985 })
  t.ok(minute.reset_ms > 0 && minute.reset_ms <= 60_000, `the minute budget frees in ${minute.reset_ms} ms`)
  t.match(day, { window: 'day', limit: 5000, used: 15, remaining: 4985 })
  t.ok(day.reset_ms > 0 && day.reset_ms <= 86_400_000, 'the day budget resets at UTC midnight')
  t.match(await budgetsOf('bystander'), [{ used: 0, remaining: 1000 }, { used: 0, remaining: 5000 }], 'another user sees only their own budgets')
})
