// Graceful shutdown: on SIGTERM an in-flight stream completes while /health answers 503 and new /v1/ai requests get 503 SERVICE_UNAVAILABLE with Connection: close, then the process exits 0; past the grace period the remaining streams end with event: error; an idle gateway exits at once on SIGINT.
import t from 'tap'
import { waitFor } from '../../../common/testkit/ports.js'
import { startUpstream, answerSse } from '../helpers/upstream.js'
import { bearer, call, completionLine, openStream, startGateway } from '../helpers/gateway.js'

const CHAT = { messages: [{ role: 'user', content: 'hello' }] }

t.test('SIGTERM during a stream: the stream completes, /health says 503 meanwhile, exit 0', async (t) => {
  const events = Array.from({ length: 8 }, (_, i) => `{"delta":"${i}"}`)
  const upstream = await startUpstream(t, answerSse({ events, intervalMs: 200 }))
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_SHUTDOWN_GRACE_SECONDS: '20' })
  t.equal((await call(gateway.url, '/health')).status, 200, 'healthy before')

  const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: { ...(await bearer()), 'x-request-id': 'drained-stream' }, body: CHAT })
  await stream.waitForEvents(1)
  const signalledAt = Date.now()
  gateway.child.kill('SIGTERM')

  const health = await waitFor(async () => {
    const reply = await call(gateway.url, '/health')
    return reply.status === 503 ? reply : undefined
  }, { timeoutMs: 3000, what: '/health to say 503' })
  t.equal(health.json().status, 'unhealthy')
  t.equal(health.json().draining, true)
  t.equal(health.headers.connection, 'close')
  t.equal((await call(gateway.url, '/health/ready')).status, 503, '/health/ready agrees')

  const refused = await call(gateway.url, '/v1/ai/generate', { headers: await bearer(), body: { use_case: 'x' } })
  t.equal(refused.status, 503)
  t.equal(refused.json().error.type, 'SERVICE_UNAVAILABLE')
  t.equal(refused.headers.connection, 'close')

  const { complete } = await stream.ended
  t.ok(complete, 'the in-flight stream finished')
  t.same(stream.events.map((event) => event.data), events, 'every event, no error')
  t.ok(Date.now() - signalledAt > 1000, 'the stream outlived the signal')

  const exit = await gateway.exited
  t.same(exit, { code: 0, signal: null }, 'exit 0')
  const line = await completionLine(gateway, 'drained-stream')
  t.equal(line.status, 'success')
  const messages = gateway.logs().map((entry) => entry.msg)
  t.ok(messages.includes('draining'))
  t.ok(messages.includes('shutdown complete'))
})

t.test('past the grace period the remaining stream ends with event: error, and the process still exits 0', async (t) => {
  const upstream = await startUpstream(t, answerSse({ events: ['{"delta":"a"}'], then: 'hang' }))
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_SHUTDOWN_GRACE_SECONDS: '1' })
  const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: await bearer(), body: CHAT })
  await stream.waitForEvents(1)
  const signalledAt = Date.now()
  gateway.child.kill('SIGTERM')
  const { complete } = await stream.ended
  const elapsed = Date.now() - signalledAt
  t.ok(complete, 'ended properly')
  t.ok(elapsed >= 800 && elapsed < 5000, `cut after ${elapsed} ms (grace 1 s)`)
  t.equal(stream.events.at(-1)?.event, 'error')
  t.equal(JSON.parse(stream.events.at(-1)!.data).error.type, 'SERVICE_UNAVAILABLE')
  t.same(await gateway.exited, { code: 0, signal: null })
  const received = await upstream.closed(upstream.requests[0]!, 2000)
  t.ok(received.aborted, 'the upstream stream was aborted too')
})

t.test('an idle gateway exits 0 at once on SIGINT', async (t) => {
  const upstream = await startUpstream(t)
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const started = Date.now()
  gateway.child.kill('SIGINT')
  t.same(await gateway.exited, { code: 0, signal: null })
  t.ok(Date.now() - started < 3000, `exited in ${Date.now() - started} ms`)
})
