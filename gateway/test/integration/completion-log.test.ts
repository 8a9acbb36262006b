// Completion log: exactly one `request completed` line per /v1/ai request whatever the outcome (success, stream, upstream error, 4xx, rate limited, cache hit, client gone), with every field at its right value (tokens_used from the upstream's usage or the stream's done event), and never a body, token, cookie or secret.
import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import { startUpstream, echo, type Behaviour } from '../helpers/upstream.js'
import { bearer, call, completionLine, completionLines, openStream, startGateway, token, TEST_SECRET } from '../helpers/gateway.js'
import { answerError, answerGenerate, generateBody } from '../helpers/generate.js'

t.test('completion log', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const jwt = await token({ sub: 'frank' })
  const secretPrompt = 'my very private birth chart details'
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

  const ok = await call(gateway.url, '/v1/ai/generate', {
    headers: { authorization: `Bearer ${jwt}`, cookie: 'session=cookie-value-123', 'x-request-id': 'log-ok', traceparent },
    body: { use_case: 'natal_chart_summary', input: { prompt: secretPrompt } }
  })
  t.equal(ok.status, 200)
  const line = await completionLine(gateway, 'log-ok')
  t.match(line, {
    level: 'info',
    service: 'ai-gateway',
    request_id: 'log-ok',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    user_id: 'frank',
    use_case: 'natal_chart_summary',
    route: '/v1/ai/generate',
    method: 'POST',
    http_status: 200,
    status: 'success',
    stream: false,
    client_aborted: false
  })
  t.notOk('error_type' in line)
  t.type(line.latency_ms, 'number')
  t.type(line.upstream_latency_ms, 'number')
  t.ok(line.latency_ms >= line.upstream_latency_ms, 'the upstream time is part of the total')

  const refused = await call(gateway.url, '/v1/ai/chat', { headers: { 'x-request-id': 'log-401' }, body: { messages: [] } })
  t.equal(refused.status, 401)
  t.match(await completionLine(gateway, 'log-401'), {
    http_status: 401, status: 'error', error_type: 'UNAUTHORIZED', user_id: null, route: '/v1/ai/chat', upstream_latency_ms: null
  })

  await call(gateway.url, '/v1/ai/nope', { headers: { 'x-request-id': 'log-404' }, body: {} })
  t.match(await completionLine(gateway, 'log-404'), { http_status: 404, error_type: 'NOT_FOUND', route: 'unmatched' })

  await call(gateway.url, '/v1/ai/generate', { method: 'GET', headers: { 'x-request-id': 'log-405' } })
  t.match(await completionLine(gateway, 'log-405'), { http_status: 405, error_type: 'METHOD_NOT_ALLOWED', method: 'GET' })

  await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${jwt}`, 'x-request-id': 'log-400', 'content-type': 'application/json' }, body: '{oops' })
  t.match(await completionLine(gateway, 'log-400'), { http_status: 400, error_type: 'INVALID_REQUEST', user_id: 'frank' })

  await call(gateway.url, '/other', { headers: { 'x-request-id': 'not-ai' } })
  await call(gateway.url, '/health', { headers: { 'x-request-id': 'not-ai-health' } })

  t.test('one line per /v1/ai request, none for other paths', async (t) => {
    const ids = completionLines(gateway).map((entry) => entry.request_id)
    t.same(ids.sort(), ['log-400', 'log-401', 'log-404', 'log-405', 'log-ok'])
  })

  t.test('no token, cookie, body or secret in any log line', async (t) => {
    const all = gateway.stdout.join('\n') + gateway.stderr.join('\n')
    for (const secret of [jwt, jwt.split('.')[2]!, 'cookie-value-123', secretPrompt, TEST_SECRET]) {
      t.notOk(all.includes(secret), `not logged: ${secret.slice(0, 12)}…`)
    }
  })
})

/** Answers like upstream-ai's chat stream: deltas, then `event: done` with the usage, `gapMs` apart. */
function answerChatStream (totalTokens: number, gapMs: number): Behaviour {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
    res.flushHeaders()
    for (const text of ['The stars ', 'are kind ', 'today.']) {
      res.write(`event: delta\ndata: ${JSON.stringify({ text })}\n\n`)
      await delay(gapMs)
      if (res.destroyed) return
    }
    res.end(`event: done\ndata: ${JSON.stringify({ usage: { input_tokens: totalTokens - 5, output_tokens: 5, total_tokens: totalTokens }, meta: { request_id: 'x', provider: 'test', model: 'test-1', use_case: 'chat' } })}\n\n`)
  }
}

/** The fields every completion line has, whatever the outcome. */
const EVERY_FIELD = ['time', 'level', 'msg', 'service', 'env', 'request_id', 'trace_id', 'user_id', 'use_case', 'route', 'method', 'http_status',
  'status', 'latency_ms', 'upstream_latency_ms', 'tokens_used', 'cached', 'cache', 'collapsed', 'rate_limited', 'stream', 'client_aborted']

t.test('a completion line for each outcome, with every field', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  // One request per user, except where a test means to spend a user's budget of 1.
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    AI_ENGINE_RATE_LIMIT_PER_MIN: '1',
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_GATEWAY_MAX_BODY_BYTES: '2048'
  })
  const lineFor = async (requestId: string): Promise<Record<string, any>> => {
    const line = await completionLine(gateway, requestId)
    for (const field of EVERY_FIELD) t.ok(field in line, `${requestId}: ${field}`)
    t.match(line, { level: 'info', msg: 'request completed', service: 'ai-gateway', env: 'test', request_id: requestId })
    t.ok(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(line.time), 'ISO time')
    t.match(line.trace_id, /^[0-9a-f]{32}$/)
    t.type(line.latency_ms, 'number')
    return line
  }

  t.test('success: generate, tokens_used from the upstream usage', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer({ sub: 'u-ok' })), 'x-request-id': 'o-ok' }, body: generateBody('leo') })
    t.equal(reply.status, 200)
    const line = await lineFor('o-ok')
    t.match(line, {
      user_id: 'u-ok', use_case: 'horoscope_daily', route: '/v1/ai/generate', method: 'POST', http_status: 200, status: 'success',
      tokens_used: 15, cached: false, cache: 'miss', rate_limited: false, stream: false, client_aborted: false
    })
    t.notOk('error_type' in line)
    t.type(line.upstream_latency_ms, 'number')
  })

  t.test('success through the proxy (a cache bypass): tokens_used from the relayed JSON answer', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer({ sub: 'u-proxied' })), 'x-request-id': 'o-proxied' }, body: generateBody('leo', { options: { temperature: 0.9 } }) })
    t.equal(reply.status, 200)
    t.match(await lineFor('o-proxied'), { http_status: 200, status: 'success', tokens_used: 15, cached: false, cache: 'bypass', stream: false })
  })

  t.test('cache hit: cached, tokens_used of the stored answer, no upstream call', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer({ sub: 'u-hit' })), 'x-request-id': 'o-hit' }, body: generateBody('leo') })
    t.equal(reply.headers['x-cache'], 'HIT')
    t.match(await lineFor('o-hit'), { http_status: 200, status: 'success', cached: true, cache: 'hit', tokens_used: 15, upstream_latency_ms: null })
  })

  t.test('stream: tokens_used read from the done event as it passes', async (t) => {
    upstream.behave(answerChatStream(42, 150))
    const stream = await openStream(gateway.url, '/v1/ai/chat', {
      headers: { ...(await bearer({ sub: 'u-stream' })), 'x-request-id': 'o-stream' },
      body: { messages: [{ role: 'user', content: 'hello' }] }
    })
    const first = await stream.waitForEvents(1)
    t.equal(first[0]!.event, 'delta')
    t.ok(first[0]!.at < 120, `the first delta arrived after ${first[0]!.at} ms, before the rest was written: not buffered`)
    await stream.ended
    t.same(stream.events.map((event) => event.event), ['delta', 'delta', 'delta', 'done'], 'every event passed through')
    t.match(await lineFor('o-stream'), {
      use_case: 'chat', route: '/v1/ai/chat', http_status: 200, status: 'success', stream: true, tokens_used: 42, cached: false, cache: 'bypass', client_aborted: false
    })
  })

  t.test('upstream error: its status and error type, no tokens', async (t) => {
    upstream.behave(answerError(502, 'PROVIDER_ERROR'))
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer({ sub: 'u-502' })), 'x-request-id': 'o-502' }, body: generateBody('virgo', { options: { temperature: 0.5 } }) })
    t.equal(reply.status, 502)
    const line = await lineFor('o-502')
    t.match(line, { http_status: 502, status: 'error', error_type: 'PROVIDER_ERROR', tokens_used: null, cached: false })
    t.type(line.upstream_latency_ms, 'number')
  })

  t.test('401: no user, no upstream call', async (t) => {
    await call(gateway.url, '/v1/ai/generate', { headers: { 'x-request-id': 'o-401' }, body: generateBody() })
    t.match(await lineFor('o-401'), { http_status: 401, status: 'error', error_type: 'UNAUTHORIZED', user_id: null, use_case: null, upstream_latency_ms: null, tokens_used: null })
  })

  t.test('400: invalid JSON', async (t) => {
    await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer({ sub: 'u-400' })), 'x-request-id': 'o-400', 'content-type': 'application/json' }, body: '{oops' })
    t.match(await lineFor('o-400'), { http_status: 400, status: 'error', error_type: 'INVALID_REQUEST', user_id: 'u-400', upstream_latency_ms: null })
  })

  t.test('413: body over the limit', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer({ sub: 'u-413' })), 'x-request-id': 'o-413' }, body: generateBody('leo', { padding: 'x'.repeat(4096) }) })
    t.equal(reply.status, 413)
    t.match(await lineFor('o-413'), { http_status: 413, status: 'error', error_type: 'PAYLOAD_TOO_LARGE', user_id: 'u-413' })
  })

  t.test('rate limited: status rate_limited, rate_limited true', async (t) => {
    upstream.behave(answerGenerate())
    const auth = await bearer({ sub: 'u-429' })
    t.equal((await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, 'x-request-id': 'o-429-first' }, body: generateBody('aries') })).status, 200)
    const denied = await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, 'x-request-id': 'o-429' }, body: generateBody('aries') })
    t.equal(denied.status, 429)
    t.match(await lineFor('o-429'), {
      http_status: 429, status: 'rate_limited', rate_limited: true, error_type: 'RATE_LIMIT_EXCEEDED', user_id: 'u-429', upstream_latency_ms: null, tokens_used: null
    })
  })

  t.test('client gone mid-stream: 499, client_aborted', async (t) => {
    upstream.behave(answerChatStream(10, 300))
    const stream = await openStream(gateway.url, '/v1/ai/chat', {
      headers: { ...(await bearer({ sub: 'u-499' })), 'x-request-id': 'o-499' },
      body: { messages: [{ role: 'user', content: 'hello' }] }
    })
    await stream.waitForEvents(1)
    stream.req.destroy()
    t.match(await lineFor('o-499'), { http_status: 499, status: 'error', client_aborted: true, stream: true, tokens_used: null, user_id: 'u-499' })
  })

  t.test('exactly one line per request', async (t) => {
    const counts = new Map<string, number>()
    for (const line of completionLines(gateway)) counts.set(line.request_id, (counts.get(line.request_id) ?? 0) + 1)
    t.ok(counts.size >= 10)
    t.ok([...counts.values()].every((count) => count === 1), JSON.stringify(Object.fromEntries(counts)))
  })
})
