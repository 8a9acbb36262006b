// Rate limiting through the built gateway without Redis (in-memory limiter): N allowed then 429 with the envelope and every header, upstream never called when denied, the limit headers on every kind of answer, the window's reset, denials not counted, another user unaffected, and no limit nor headers when disabled.
import t from 'tap'
import { freePort, sleep } from '../../../common/testkit/ports.js'
import { answerSse, startUpstream } from '../helpers/upstream.js'
import { bearer, call, openStream, startGateway } from '../helpers/gateway.js'
import { answerError, answerGenerate, generateBody, rateLimitHeadersOf } from '../helpers/generate.js'

const generate = async (baseUrl: string, user: string, requestId?: string) => await call(baseUrl, '/v1/ai/generate', {
  headers: { ...(await bearer({ sub: user })), ...(requestId === undefined ? {} : { 'x-request-id': requestId }) },
  body: generateBody()
})

t.test('in-memory limiter (no REDIS_URL), limit 3 per 60 s', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '3', REDIS_URL: undefined })

  t.test('start-up says the limiter keeps its state in memory', async (t) => {
    t.ok(gateway.logs().some((line) => line.level === 'info' && /REDIS_URL is unset/.test(String(line.msg))), 'REDIS_URL is unset line')
    t.match(gateway.logs().find((line) => line.msg === 'rate limiting'), { enabled: true, limit: 3, window_seconds: 60, store: 'memory' })
  })

  t.test('3 allowed with the headers, the 4th is 429 with the envelope and Retry-After; upstream not called for it', async (t) => {
    const before = upstream.requests.length
    for (let i = 1; i <= 3; i++) {
      const reply = await generate(gateway.url, 'alice')
      t.equal(reply.status, 200, `request ${i}`)
      const headers = rateLimitHeadersOf(reply.headers)
      t.equal(headers.limit, '3')
      t.equal(headers.remaining, String(3 - i))
      t.ok(Number(headers.reset) >= 1 && Number(headers.reset) <= 60, `X-RateLimit-Reset ${headers.reset}`)
      t.equal(headers.policy, '"default";q=3;w=60')
      t.equal(headers.ratelimit, `"default";r=${3 - i};t=${headers.reset}`)
      t.equal(headers.retryAfter, undefined, 'no Retry-After when allowed')
    }
    t.equal(upstream.requests.length - before, 3)

    const denied = await generate(gateway.url, 'alice', 'denied-1')
    t.equal(denied.status, 429)
    const envelope = denied.json()
    t.same(Object.keys(envelope).sort(), ['error', 'meta'])
    t.equal(envelope.error.type, 'RATE_LIMIT_EXCEEDED')
    t.type(envelope.error.message, 'string')
    const retryAfterMs = envelope.error.retry_after_ms
    t.ok(Number.isInteger(retryAfterMs) && retryAfterMs > 0 && retryAfterMs <= 60_000, `retry_after_ms ${retryAfterMs}`)
    t.equal(envelope.meta.request_id, 'denied-1')
    t.type(envelope.meta.trace_id, 'string')
    const headers = rateLimitHeadersOf(denied.headers)
    t.equal(headers.retryAfter, String(Math.ceil(retryAfterMs / 1000)), 'Retry-After: whole seconds, rounded up')
    t.equal(headers.limit, '3')
    t.equal(headers.remaining, '0')
    t.equal(headers.reset, headers.retryAfter, 'the reset names the same moment as Retry-After')
    t.equal(headers.policy, '"default";q=3;w=60')
    t.equal(headers.ratelimit, `"default";r=0;t=${headers.retryAfter}`)
    t.equal(denied.headers['x-request-id'], 'denied-1')
    t.equal(upstream.requests.length - before, 3, 'upstream-ai was not called for the denied request')
  })

  t.test('another user is unaffected', async (t) => {
    const reply = await generate(gateway.url, 'bob')
    t.equal(reply.status, 200)
    t.equal(reply.headers['x-ratelimit-remaining'], '2')
  })

  t.test('chat counts against the same budget', async (t) => {
    const auth = await bearer({ sub: 'carol' })
    for (let i = 0; i < 2; i++) t.equal((await generate(gateway.url, 'carol')).status, 200)
    const chat = await call(gateway.url, '/v1/ai/chat', { headers: auth, body: { messages: [{ role: 'user', content: 'hi' }], stream: false } })
    t.equal(chat.status, 200)
    t.equal(chat.headers['x-ratelimit-remaining'], '0')
    const denied = await call(gateway.url, '/v1/ai/chat', { headers: auth, body: { messages: [{ role: 'user', content: 'hi' }], stream: false } })
    t.equal(denied.status, 429)
  })

  t.test('a refused identity is not counted (401 before the limiter)', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: 'Bearer nope' }, body: generateBody() })
    t.equal(reply.status, 401)
    t.equal(reply.headers['x-ratelimit-limit'], undefined)
  })

  t.test('the limit headers are on every kind of answer: upstream error, stream, the gateway\'s own 400', async (t) => {
    upstream.behave(answerError(503, 'PROVIDER_RATE_LIMITED'))
    const upstreamError = await generate(gateway.url, 'dave')
    t.equal(upstreamError.status, 503)
    t.equal(upstreamError.json().error.type, 'PROVIDER_RATE_LIMITED', 'the upstream envelope passes through')
    t.match(rateLimitHeadersOf(upstreamError.headers), { limit: '3', remaining: '2', policy: '"default";q=3;w=60' }, 'writeHead keeps the headers set before it')

    upstream.behave(answerSse({ events: ['{"delta":"a"}', '[DONE]'] }))
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: await bearer({ sub: 'dave' }), body: { messages: [{ role: 'user', content: 'hi' }] } })
    await stream.ended
    t.equal(stream.res.statusCode, 200)
    t.match(stream.res.headers['content-type'], /^text\/event-stream/)
    t.match(rateLimitHeadersOf(stream.res.headers), { limit: '3', remaining: '1' }, 'a stream carries them too')

    const invalid = await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: 'dave' }), body: '{not json' })
    t.equal(invalid.status, 415, 'no content type: refused by the body stage')
    t.match(rateLimitHeadersOf(invalid.headers), { limit: '3', remaining: '0' }, 'a refusal after the limiter carries them (and was counted)')
    upstream.behave(answerGenerate())
  })
})

t.test('the gateway\'s own 502 carries the limit headers', async (t) => {
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: `http://127.0.0.1:${await freePort()}`, AI_ENGINE_RATE_LIMIT_PER_MIN: '5' })
  const reply = await generate(gateway.url, 'erin')
  t.equal(reply.status, 502)
  t.equal(reply.json().error.type, 'UPSTREAM_UNAVAILABLE')
  t.match(rateLimitHeadersOf(reply.headers), { limit: '5', remaining: '4' })
})

t.test('a 1 s window resets, and denied requests do not use budget', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '2', AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS: '1' })
  t.equal((await generate(gateway.url, 'frank')).status, 200)
  t.equal((await generate(gateway.url, 'frank')).status, 200)
  const denied = await generate(gateway.url, 'frank')
  t.equal(denied.status, 429)
  const retryAfterMs = denied.json().error.retry_after_ms
  t.ok(retryAfterMs > 0 && retryAfterMs <= 1000, `retry_after_ms ${retryAfterMs} within the 1 s window`)
  t.equal(denied.headers['retry-after'], '1')
  t.equal(denied.headers['ratelimit-policy'], '"default";q=2;w=1')
  // Retrying while denied must not push the window further out.
  for (let i = 0; i < 3; i++) t.equal((await generate(gateway.url, 'frank')).status, 429)
  await sleep(1050)
  t.equal((await generate(gateway.url, 'frank')).status, 200, 'allowed again after the window')
  t.equal((await generate(gateway.url, 'frank')).status, 200, 'the whole budget is back: denials were not counted')
  t.equal((await generate(gateway.url, 'frank')).status, 429)
  t.equal(upstream.requests.length, 4)
})

t.test('disabled: no limit and no headers', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_RATE_LIMIT_ENABLED: 'false', AI_ENGINE_RATE_LIMIT_PER_MIN: '1' })
  for (let i = 0; i < 4; i++) {
    const reply = await generate(gateway.url, 'gina')
    t.equal(reply.status, 200)
    t.same(rateLimitHeadersOf(reply.headers), { limit: undefined, remaining: undefined, reset: undefined, policy: undefined, ratelimit: undefined, retryAfter: undefined })
  }
  t.equal(upstream.requests.length, 4)
  t.match(gateway.logs().find((line) => line.msg === 'rate limiting'), { enabled: false })
})
