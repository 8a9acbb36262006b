// The response cache through the built gateway on a real redis-server, with a counting test upstream: miss then hit (headers, meta, ids), key-order independence, every input that changes the key, temperature > 0 and chat never cached, Cache-Control: no-cache, errors and oversized answers never stored, TTL expiry, user scope, the same outgoing headers as the proxy, 502/504 on the cache path, disabled cache, Redis down, and a hit counting against the rate limit.
import t from 'tap'
import { freePort, sleep, waitFor } from '../../../common/testkit/ports.js'
import type { RunningService } from '../../../common/testkit/process.js'
import { startRedis, type RedisServer } from '../../../common/testkit/redis.js'
import { answerSse, hang, startUpstream, type TestUpstream } from '../helpers/upstream.js'
import { bearer, call, openStream, startGateway, type Reply } from '../helpers/gateway.js'
import { answerError, answerGenerate, generateBody } from '../helpers/generate.js'

interface Ask {
  user?: string
  requestId?: string
  headers?: Record<string, string>
  body?: unknown
  path?: string
}

async function ask (gateway: RunningService, options: Ask = {}): Promise<Reply> {
  return await call(gateway.url, options.path ?? '/v1/ai/generate', {
    headers: {
      ...(await bearer({ sub: options.user ?? 'alice' })),
      ...(options.requestId === undefined ? {} : { 'x-request-id': options.requestId }),
      ...options.headers
    },
    body: options.body ?? generateBody()
  })
}

/** Upstream calls made while `fn` runs. */
async function upstreamCalls (upstream: TestUpstream, fn: () => Promise<unknown>): Promise<number> {
  const before = upstream.requests.length
  await fn()
  return upstream.requests.length - before
}

async function redisConnected (gateway: RunningService): Promise<void> {
  await waitFor(() => gateway.logs().some((line) => line.msg === 'redis connected') ? true : undefined, { timeoutMs: 5000, what: 'redis connected' })
}

/** The integer in a RESP integer reply (":20\r\n"). */
const respInteger = (reply: string): number => Number(/^:(-?\d+)\r\n$/.exec(reply)?.[1] ?? NaN)

const cacheKeys = async (redis: RedisServer): Promise<number> => (await redis.command('KEYS', 'ai_cache:*')).split('\r\n').filter((line) => line.startsWith('ai_cache:')).length

t.test('cache on Redis, scope global', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_RATE_LIMIT_PER_MIN: '1000'
  })
  await redisConnected(gateway)
  t.match(gateway.logs().find((line) => line.msg === 'response cache'), { enabled: true, store: 'redis', scope: 'global', ttl_seconds: 3600 })

  t.test('the limiter and the cache share one Redis connection', async (t) => {
    await ask(gateway, { body: generateBody('one-client') })
    const clients = (await redis.command('CLIENT', 'LIST')).split('\n').filter((line) => line.includes('name=ai-gateway'))
    t.equal(clients.length, 1, 'one client named ai-gateway')
    t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{alice}')), 1, 'the request was counted in Redis')
    t.equal(await cacheKeys(redis), 1, 'and its answer stored there')
    await redis.command('FLUSHALL')
  })

  t.test('a miss calls upstream-ai and stores; the hit does not call it', async (t) => {
    const body = generateBody('miss-then-hit')
    let miss!: Reply
    t.equal(await upstreamCalls(upstream, async () => { miss = await ask(gateway, { body, requestId: 'miss-1' }) }), 1)
    t.equal(miss.status, 200)
    t.equal(miss.headers['x-cache'], 'MISS')
    t.equal(miss.headers['cache-status'], 'ai-gateway; fwd=miss; fwd-status=200; stored')
    t.equal(miss.headers.age, undefined)
    t.match(miss.json().meta, { cached: false, request_id: 'miss-1' })
    t.equal(await cacheKeys(redis), 1, 'one key in Redis')

    let hit!: Reply
    t.equal(await upstreamCalls(upstream, async () => { hit = await ask(gateway, { body, requestId: 'hit-1', user: 'bob' }) }), 0, 'the hit did not reach upstream-ai')
    t.equal(hit.status, 200)
    t.equal(hit.headers['x-cache'], 'HIT')
    t.match(hit.headers['cache-status'], /^ai-gateway; hit; ttl=(3600|3599)$/)
    t.match(hit.headers.age, /^[01]$/)
    t.match(hit.headers['content-type'], /^application\/json/)
    const answer = hit.json()
    t.equal(answer.text, miss.json().text, 'the stored answer')
    t.same(answer.usage, miss.json().usage)
    t.equal(answer.meta.cached, true)
    t.equal(answer.meta.request_id, 'hit-1', 'this request\'s id, not the first one\'s')
    t.not(answer.meta.trace_id, miss.json().meta.trace_id, 'this request\'s trace')
    t.equal(hit.headers['x-request-id'], 'hit-1')
  })

  t.test('the order of keys in the body does not matter', async (t) => {
    const first = { use_case: 'horoscope_daily', input: { sign: 'order', date: '2026-01-01', tz: 'UTC' }, options: { max_tokens: 50, temperature: 0 } }
    const reordered = JSON.parse('{"options":{"temperature":0,"max_tokens":50},"input":{"tz":"UTC","date":"2026-01-01","sign":"order"},"use_case":"horoscope_daily"}')
    t.equal(await upstreamCalls(upstream, async () => { await ask(gateway, { body: first }) }), 1)
    const again = await ask(gateway, { body: reordered })
    t.equal(again.headers['x-cache'], 'HIT')
    const absentTemperature = await ask(gateway, { body: { use_case: 'horoscope_daily', input: { sign: 'order', date: '2026-01-01', tz: 'UTC' }, options: { max_tokens: 50 } } })
    t.equal(absentTemperature.headers['x-cache'], 'HIT', 'temperature absent is temperature 0')
  })

  t.test('each input that changes the answer changes the key', async (t) => {
    const base = { use_case: 'horoscope_daily', input: { sign: 'variants' }, context: { locale: 'en' }, options: { model: 'm-1', max_tokens: 100 } }
    const variants = [
      { ...base, use_case: 'natal_chart_summary' },
      { ...base, input: { sign: 'variants-2' } },
      { ...base, context: { locale: 'fr' } },
      { ...base, options: { ...base.options, model: 'm-2' } },
      { ...base, options: { ...base.options, max_tokens: 101 } }
    ]
    t.equal(await upstreamCalls(upstream, async () => { await ask(gateway, { body: base }) }), 1)
    for (const variant of variants) {
      let reply!: Reply
      t.equal(await upstreamCalls(upstream, async () => { reply = await ask(gateway, { body: variant }) }), 1, JSON.stringify(variant))
      t.equal(reply.headers['x-cache'], 'MISS')
    }
    t.equal((await ask(gateway, { body: base })).headers['x-cache'], 'HIT', 'the first is still there')
  })

  t.test('temperature > 0 and chat are never cached', async (t) => {
    const warm = generateBody('warm', { options: { temperature: 0.7 } })
    const calls = await upstreamCalls(upstream, async () => {
      for (let i = 0; i < 2; i++) {
        const reply = await ask(gateway, { body: warm })
        t.equal(reply.headers['x-cache'], 'BYPASS')
        t.equal(reply.headers['cache-status'], 'ai-gateway; fwd=bypass; detail=temperature')
        t.equal(reply.json().meta.cached, false)
      }
      for (let i = 0; i < 2; i++) {
        const chat = await ask(gateway, { path: '/v1/ai/chat', body: { messages: [{ role: 'user', content: 'same' }], stream: false, options: { temperature: 0 } } })
        t.equal(chat.status, 200)
        t.equal(chat.headers['x-cache'], 'BYPASS')
        t.equal(chat.headers['cache-status'], 'ai-gateway; fwd=bypass; detail=route')
      }
    })
    t.equal(calls, 4, 'every one reached upstream-ai')

    upstream.behave(answerSse({ events: ['{"delta":"a"}', '[DONE]'] }))
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: await bearer(), body: { messages: [{ role: 'user', content: 'hi' }] } })
    await stream.ended
    t.equal(stream.events.length, 2, 'a stream still streams')
    t.equal(stream.res.headers['x-cache'], 'BYPASS')
    upstream.behave(answerGenerate())
  })

  t.test('Cache-Control: no-cache fetches fresh and stores the result', async (t) => {
    const body = generateBody('no-cache')
    const first = await ask(gateway, { body })
    let fresh!: Reply
    t.equal(await upstreamCalls(upstream, async () => { fresh = await ask(gateway, { body, headers: { 'cache-control': 'no-cache' } }) }), 1)
    t.equal(fresh.headers['x-cache'], 'BYPASS')
    t.equal(fresh.headers['cache-status'], 'ai-gateway; fwd=bypass; fwd-status=200; stored; detail=no-cache')
    t.not(fresh.json().text, first.json().text, 'a fresh answer')
    const after = await ask(gateway, { body })
    t.equal(after.headers['x-cache'], 'HIT')
    t.equal(after.json().text, fresh.json().text, 'the fresh answer replaced the stored one')
    t.equal((await ask(gateway, { body, headers: { 'cache-control': 'no-store' } })).headers['cache-status'], 'ai-gateway; fwd=bypass; detail=no-store')
  })

  t.test('upstream errors are passed on and never stored', async (t) => {
    upstream.behave(answerError(503, 'PROVIDER_RATE_LIMITED'))
    const body = generateBody('error')
    for (let i = 0; i < 2; i++) {
      let reply!: Reply
      t.equal(await upstreamCalls(upstream, async () => { reply = await ask(gateway, { body, requestId: `error-${i}` }) }), 1, `attempt ${i + 1} reached upstream-ai`)
      t.equal(reply.status, 503)
      t.same(reply.json(), { error: { type: 'PROVIDER_RATE_LIMITED', message: 'upstream says PROVIDER_RATE_LIMITED' }, meta: { request_id: `error-${i}` } }, 'the envelope unchanged')
      t.equal(reply.headers['x-cache'], 'MISS')
      t.equal(reply.headers['cache-status'], 'ai-gateway; fwd=miss; fwd-status=503')
    }
    upstream.behave(answerGenerate())
    t.equal((await ask(gateway, { body })).headers['x-cache'], 'MISS', 'the next success is a miss')
  })

  t.test('the cache path sends upstream-ai the same headers as the proxy', async (t) => {
    const headers = { 'x-custom': 'kept', accept: 'application/json', cookie: 'no', 'x-forwarded-for': '203.0.113.9' }
    await ask(gateway, { body: generateBody('headers', { options: { temperature: 1 } }), headers, requestId: 'via-proxy' })
    const proxied = upstream.requests.at(-1)!
    await ask(gateway, { body: generateBody('headers'), headers, requestId: 'via-cache' })
    const cached = upstream.requests.at(-1)!
    const names = (received: typeof proxied): string[] => Object.keys(received.headers).filter((name) => !['connection', 'content-length', 'accept-encoding'].includes(name)).sort()
    t.same(names(cached), names(proxied))
    t.equal(cached.headers['x-user-id'], 'alice')
    t.equal(cached.headers['x-request-id'], 'via-cache')
    t.equal(cached.headers['x-forwarded-for'], '127.0.0.1')
    t.equal(cached.headers.cookie, undefined)
    t.equal(cached.headers['x-custom'], 'kept')
    t.equal(cached.headers.host, `127.0.0.1:${upstream.port}`)
    t.equal(cached.url, '/v1/ai/generate')
  })
})

t.test('oversized answers are served, not stored; TTL expiry', async (t) => {
  const upstream = await startUpstream(t, answerGenerate({ textBytes: 2000 }))
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_CACHE_MAX_ENTRY_BYTES: '1024', AI_ENGINE_CACHE_TTL_SECONDS: '1', AI_ENGINE_RATE_LIMIT_ENABLED: 'false'
  })
  const body = generateBody('big')
  for (let i = 0; i < 2; i++) {
    const reply = await ask(gateway, { body })
    t.equal(reply.status, 200)
    t.equal(reply.json().text.length, 2000, 'served whole')
    t.equal(reply.headers['cache-status'], 'ai-gateway; fwd=miss; fwd-status=200', 'not stored')
  }
  t.equal(upstream.requests.length, 2)

  upstream.behave(answerGenerate())
  const small = generateBody('ttl')
  t.equal((await ask(gateway, { body: small })).headers['x-cache'], 'MISS')
  t.equal((await ask(gateway, { body: small })).headers['x-cache'], 'HIT')
  await sleep(1100)
  t.equal((await ask(gateway, { body: small })).headers['x-cache'], 'MISS', 'expired after AI_ENGINE_CACHE_TTL_SECONDS=1')
  t.match(gateway.logs().find((line) => line.msg === 'response cache'), { store: 'memory' }, 'no REDIS_URL: the memory store')
})

t.test('scope user: one user never gets another\'s answer', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_CACHE_SCOPE: 'user' })
  const body = generateBody('scoped')
  t.equal((await ask(gateway, { body, user: 'alice' })).headers['x-cache'], 'MISS')
  t.equal((await ask(gateway, { body, user: 'alice' })).headers['x-cache'], 'HIT')
  t.equal((await ask(gateway, { body, user: 'bob' })).headers['x-cache'], 'MISS', 'bob misses what alice stored')
  t.equal(upstream.requests.length, 2)
})

t.test('disabled (the default): no cache headers, every request reaches upstream-ai', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  for (let i = 0; i < 3; i++) {
    const reply = await ask(gateway, { body: generateBody('disabled') })
    t.equal(reply.status, 200)
    t.equal(reply.headers['x-cache'], undefined)
    t.equal(reply.headers['cache-status'], undefined)
    t.equal(reply.headers.age, undefined)
  }
  t.equal(upstream.requests.length, 3)
})

t.test('the cache path\'s upstream faults: 504 after AI_ENGINE_TIMEOUT_SECONDS (call aborted), 502 when refused', async (t) => {
  const upstream = await startUpstream(t, hang())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_TIMEOUT_SECONDS: '0.5' })
  const started = Date.now()
  const reply = await ask(gateway, { body: generateBody('slow') })
  const elapsed = Date.now() - started
  t.equal(reply.status, 504)
  t.equal(reply.json().error.type, 'UPSTREAM_TIMEOUT')
  t.ok(elapsed >= 450 && elapsed < 3000, `after ${elapsed} ms`)
  t.equal(reply.headers['x-cache'], 'MISS')
  const received = await upstream.closed(await upstream.request(1), 1000)
  t.ok(received.aborted, 'the upstream call was aborted')

  const refused = await startGateway(t, { AI_UPSTREAM_URL: `http://127.0.0.1:${await freePort()}`, AI_ENGINE_CACHE_ENABLED: 'true' })
  const unavailable = await ask(refused, { body: generateBody('refused') })
  t.equal(unavailable.status, 502)
  t.equal(unavailable.json().error.type, 'UPSTREAM_UNAVAILABLE')
})

t.test('Redis down: answered without delay, from upstream-ai; one warning', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_RATE_LIMIT_ENABLED: 'false'
  })
  await redisConnected(gateway)
  const body = generateBody('outage')
  t.equal((await ask(gateway, { body })).headers['x-cache'], 'MISS')
  t.equal((await ask(gateway, { body })).headers['x-cache'], 'HIT', 'from Redis')
  redis.freeze()
  t.teardown(() => { redis.thaw() })
  const before = upstream.requests.length
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    const reply = await ask(gateway, { body })
    const ms = performance.now() - started
    t.equal(reply.status, 200)
    t.ok(ms < 100 + 900, `answered in ${ms.toFixed(0)} ms (Redis timeout 100 ms)`)
    if (i === 0) t.equal(reply.headers['x-cache'], 'MISS', 'the stored answer is out of reach: a miss')
  }
  t.ok(upstream.requests.length - before >= 1, 'served by upstream-ai')
  await waitFor(() => gateway.logs().some((line) => line.event === 'cache_fallback_memory') ? true : undefined, { timeoutMs: 5000, what: 'the fallback warning' })
  t.equal(gateway.logs().filter((line) => line.event === 'cache_fallback_memory' && line.level === 'warn').length, 1, 'one warning')
  redis.thaw()
  // The recovery probe is started by traffic (at most once a second).
  for (let i = 0; i < 50 && !gateway.logs().some((line) => line.event === 'cache_redis_back'); i++) {
    await ask(gateway, { body })
    await sleep(100)
  }
  await sleep(100)
  t.equal(gateway.logs().filter((line) => line.event === 'cache_redis_back' && line.level === 'info').length, 1, 'back on Redis, one info line')
})

t.test('a hit still counts against the rate limit', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_RATE_LIMIT_PER_MIN: '3' })
  const body = generateBody('budget')
  const replies = []
  for (let i = 0; i < 4; i++) replies.push(await ask(gateway, { body, user: 'henry' }))
  t.same(replies.map((reply) => [reply.status, reply.headers['x-cache'] ?? null]), [[200, 'MISS'], [200, 'HIT'], [200, 'HIT'], [429, null]])
  t.same(replies.map((reply) => reply.headers['x-ratelimit-remaining']), ['2', '1', '0', '0'], 'hits carry the limit headers')
  t.equal(upstream.requests.length, 1)
})
