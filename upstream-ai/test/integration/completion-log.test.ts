// upstream-ai's completion line follows the gateway's rules: one JSON line per request with the same field names (status, tokens_used, upstream_latency_ms for the provider call, cached/rate_limited false, 499 for a client that left), and request data sanitised: long or sensitive values never appear.
import t, { type Test } from 'tap'
import { openStream, send } from '../helpers/client.js'
import { completionLine, startUpstreamAi } from '../helpers/upstream.js'

const upstream = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '30', LOG_LEVEL: 'debug' })
const EVERY_FIELD = ['time', 'level', 'msg', 'service', 'env', 'request_id', 'trace_id', 'user_id', 'use_case', 'route', 'method', 'http_status',
  'status', 'latency_ms', 'upstream_latency_ms', 'tokens_used', 'cached', 'rate_limited', 'stream', 'client_aborted']

async function lineFor (t: Test, requestId: string): Promise<Record<string, any>> {
  const line = await completionLine(upstream, requestId)
  for (const field of EVERY_FIELD) t.ok(field in line, `${requestId}: ${field}`)
  t.match(line, { level: 'info', service: 'upstream-ai', env: 'test', msg: 'request completed', cached: false, rate_limited: false })
  t.ok(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(line.time as string), 'ISO time')
  return line
}

t.test('generate: success with tokens and the provider latency', async (t) => {
  const answer = await send(`${upstream.url}/v1/ai/generate`, { body: { use_case: 'horoscope_daily', input: { sign: 'leo' } }, headers: { 'x-request-id': 'ua-ok', 'x-user-id': 'ann' } })
  t.equal(answer.status, 200)
  const line = await lineFor(t, 'ua-ok')
  t.match(line, { user_id: 'ann', use_case: 'horoscope_daily', route: '/v1/ai/generate', method: 'POST', http_status: 200, status: 'success', stream: false, client_aborted: false, tokens_used: answer.json.usage.total_tokens })
  t.notOk('error_type' in line)
  t.ok(line.upstream_latency_ms >= 25 && line.upstream_latency_ms <= line.latency_ms, `provider ${line.upstream_latency_ms} ms of ${line.latency_ms} ms`)
})

t.test('chat stream: tokens from the done event', async (t) => {
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'hi' }] }, headers: { 'x-request-id': 'ua-stream' } })
  await stream.ended
  const done = stream.events().at(-1)!
  t.equal(done.event, 'done')
  t.match(await lineFor(t, 'ua-stream'), { use_case: 'chat', stream: true, http_status: 200, status: 'success', tokens_used: done.data.usage.total_tokens, user_id: null })
})

t.test('4xx: error, no provider call, tokens_used null', async (t) => {
  await send(`${upstream.url}/v1/ai/generate`, { body: { use_case: 'no_such_case', input: {} }, headers: { 'x-request-id': 'ua-400' } })
  t.match(await lineFor(t, 'ua-400'), { http_status: 400, status: 'error', error_type: 'UNKNOWN_USE_CASE', tokens_used: null, upstream_latency_ms: null, use_case: 'no_such_case' })
  await send(`${upstream.url}/v1/ai/nope`, { body: {}, headers: { 'x-request-id': 'ua-404' } })
  t.match(await lineFor(t, 'ua-404'), { http_status: 404, status: 'error', error_type: 'NOT_FOUND', use_case: null })
})

t.test('a client that leaves mid-stream: 499, client_aborted', async (t) => {
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'a long answer' }] }, headers: { 'x-request-id': 'ua-499' } })
  await stream.waitForEvents(1)
  stream.abort()
  const line = await lineFor(t, 'ua-499')
  t.match(line, { http_status: 499, status: 'error', client_aborted: true, stream: true, tokens_used: null })
  t.type(line.upstream_latency_ms, 'number')
})

t.test('request data is sanitised: a long use_case is cut, nothing sensitive is logged', async (t) => {
  const marker = 'SANITISE-ME-9d1e'
  await send(`${upstream.url}/v1/ai/generate`, {
    body: { use_case: `${marker}${'x'.repeat(2000)}`, input: { birth_data: marker, email: `${marker}@example.com` }, context: { prompt: marker } },
    headers: { 'x-request-id': 'ua-long', authorization: `Bearer ${marker}`, cookie: `s=${marker}` }
  })
  const line = await lineFor(t, 'ua-long')
  t.ok(String(line.use_case).length < 400, `use_case cut to ${String(line.use_case).length} characters`)
  const others = upstream.stdout.join('\n').replace(String(line.use_case), '')
  t.notOk(others.includes(marker), 'the marker appears nowhere but in the (cut) use_case it was sent as')
  t.notOk(upstream.stderr.join('\n').includes(marker))
})
