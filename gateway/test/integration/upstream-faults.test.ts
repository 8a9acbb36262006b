// Upstream faults: nothing listening or a dropped connection is 502 UPSTREAM_UNAVAILABLE, a hanging upstream is 504 UPSTREAM_TIMEOUT after AI_ENGINE_TIMEOUT_SECONDS (and the upstream call is aborted), and upstream-ai's own error answers pass through unchanged.
import t from 'tap'
import { freePort } from '../../../common/testkit/ports.js'
import { startUpstream, answerJson, hang, reset } from '../helpers/upstream.js'
import { bearer, call, completionLine, startGateway } from '../helpers/gateway.js'

const BODY = { use_case: 'horoscope_daily', input: { sign: 'leo' } }

t.test('502 when nothing listens at AI_UPSTREAM_URL', async (t) => {
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: `http://127.0.0.1:${await freePort()}` })
  const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer()), 'x-request-id': 'refused-1' }, body: BODY })
  t.equal(reply.status, 502)
  const envelope = reply.json()
  t.equal(envelope.error.type, 'UPSTREAM_UNAVAILABLE')
  t.same(Object.keys(envelope).sort(), ['error', 'meta'])
  t.equal(envelope.meta.request_id, 'refused-1')
  const line = await completionLine(gateway, 'refused-1')
  t.equal(line.http_status, 502)
  t.equal(line.error_type, 'UPSTREAM_UNAVAILABLE')
  t.equal(line.status, 'error')
})

t.test('502 when upstream-ai drops the connection before answering', async (t) => {
  const upstream = await startUpstream(t, reset())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const reply = await call(gateway.url, '/v1/ai/generate', { headers: await bearer(), body: BODY })
  t.equal(reply.status, 502)
  t.equal(reply.json().error.type, 'UPSTREAM_UNAVAILABLE')
})

t.test('504 when upstream-ai does not answer within AI_ENGINE_TIMEOUT_SECONDS, and the call is aborted', async (t) => {
  const upstream = await startUpstream(t, hang())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_TIMEOUT_SECONDS: '1' })
  const started = Date.now()
  const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer()), 'x-request-id': 'slow-1' }, body: BODY })
  const elapsed = Date.now() - started
  t.equal(reply.status, 504)
  t.equal(reply.json().error.type, 'UPSTREAM_TIMEOUT')
  t.ok(elapsed >= 900 && elapsed < 4000, `answered after ${elapsed} ms`)
  const received = await upstream.closed(await upstream.request(1), 1000)
  t.ok(received.aborted, 'the hanging upstream request was aborted')
  const line = await completionLine(gateway, 'slow-1')
  t.equal(line.http_status, 504)
  t.equal(line.error_type, 'UPSTREAM_TIMEOUT')
})

t.test('upstream-ai error envelopes pass through unchanged', async (t) => {
  const upstream = await startUpstream(t)
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const cases: Array<[number, unknown, Record<string, string>]> = [
    [400, { error: { type: 'UNKNOWN_USE_CASE', message: 'Unknown use_case.', field: 'use_case' }, meta: { request_id: 'up-1' } }, {}],
    [502, { error: { type: 'PROVIDER_ERROR', message: 'The AI provider failed to answer.' }, meta: { request_id: 'up-2' } }, {}],
    [503, { error: { type: 'PROVIDER_RATE_LIMITED', message: 'Slow down.', retry_after_ms: 1500 }, meta: { request_id: 'up-3' } }, { 'retry-after': '2' }],
    [500, { error: { type: 'INTERNAL_ERROR', message: 'An internal error occurred.' }, meta: { request_id: 'up-4' } }, {}]
  ]
  for (const [status, body, headers] of cases) {
    upstream.behave(answerJson(status, body, headers))
    const requestId = `pass-${status}`
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer()), 'x-request-id': requestId }, body: BODY })
    t.equal(reply.status, status)
    t.equal(reply.text, JSON.stringify(body), `${status}: the body byte for byte`)
    for (const [name, value] of Object.entries(headers)) t.equal(reply.headers[name], value)
    const line = await completionLine(gateway, requestId)
    t.equal(line.http_status, status)
    t.equal(line.status, 'error')
    t.equal(line.error_type, (body as { error: { type: string } }).error.type, 'the log names the upstream error type')
  }
})
