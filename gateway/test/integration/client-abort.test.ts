// Client aborts: a client that disconnects (mid-stream, or while waiting for a non-streaming answer) makes the gateway abort its upstream-ai call within a second, and the completion log records a 499 client abort.
import t from 'tap'
import { request } from 'node:http'
import { startUpstream, answerSse, hang } from '../helpers/upstream.js'
import { bearer, completionLine, openStream, startGateway } from '../helpers/gateway.js'

t.test('client aborts', async (t) => {
  const upstream = await startUpstream(t)
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })

  t.test('mid-stream: the upstream stream is aborted within a second', async (t) => {
    upstream.behave(answerSse({ events: Array.from({ length: 50 }, (_, i) => `{"delta":"${i}"}`), intervalMs: 200 }))
    const stream = await openStream(gateway.url, '/v1/ai/chat', {
      headers: { ...(await bearer({ sub: 'dora' })), 'x-request-id': 'abort-stream' },
      body: { use_case: 'chat', messages: [{ role: 'user', content: 'a long story' }] }
    })
    await stream.waitForEvents(2)
    const received = await upstream.request(upstream.requests.length)
    const abortedAt = Date.now()
    stream.req.destroy()
    await upstream.closed(received, 1000)
    t.ok(received.aborted, 'upstream-ai saw the request aborted')
    t.ok(received.closedAt! - abortedAt < 1000, `within ${received.closedAt! - abortedAt} ms`)
    const line = await completionLine(gateway, 'abort-stream')
    t.equal(line.http_status, 499)
    t.equal(line.client_aborted, true)
    t.equal(line.status, 'error')
    t.equal(line.stream, true)
    t.equal(line.user_id, 'dora')
  })

  t.test('waiting for a non-streaming answer: the upstream call is aborted within a second', async (t) => {
    upstream.behave(hang())
    const before = upstream.requests.length
    const auth = await bearer({ sub: 'erin' })
    const req = request(`${gateway.url}/v1/ai/generate`, { method: 'POST', agent: false, headers: { ...auth, 'content-type': 'application/json', 'x-request-id': 'abort-wait' } })
    req.on('error', () => {})
    req.end(JSON.stringify({ use_case: 'horoscope_daily', input: {} }))
    const received = await upstream.request(before + 1)
    const abortedAt = Date.now()
    req.destroy()
    await upstream.closed(received, 1000)
    t.ok(received.aborted, 'no tokens spent for nobody')
    t.ok(received.closedAt! - abortedAt < 1000, `within ${received.closedAt! - abortedAt} ms`)
    const line = await completionLine(gateway, 'abort-wait')
    t.equal(line.http_status, 499)
    t.equal(line.client_aborted, true)
    t.equal(line.stream, false)
    t.equal(line.use_case, 'horoscope_daily')
    t.type(line.upstream_latency_ms, 'number')
  })

  t.test('while sending its body: nothing reaches upstream-ai, and the log says 499', async (t) => {
    const before = upstream.requests.length
    const req = request(`${gateway.url}/v1/ai/generate`, {
      method: 'POST', agent: false, headers: { ...(await bearer()), 'content-type': 'application/json', 'content-length': '1000', 'x-request-id': 'abort-body' }
    })
    req.on('error', () => {})
    req.write('{"use_case": "horoscope_daily", "input": {')
    await new Promise((resolve) => setTimeout(resolve, 200))
    req.destroy()
    const line = await completionLine(gateway, 'abort-body')
    t.equal(line.http_status, 499)
    t.equal(line.client_aborted, true)
    t.equal(line.upstream_latency_ms, null)
    t.equal(upstream.requests.length, before)
  })

  t.test('each aborted request has exactly one completion line', async (t) => {
    const lines = gateway.logs().filter((line) => line.msg === 'request completed')
    for (const id of ['abort-stream', 'abort-wait', 'abort-body']) {
      t.equal(lines.filter((line) => line.request_id === id).length, 1, id)
    }
  })
})
