// Streaming: SSE from /v1/ai/chat reaches the client event by event with X-Accel-Buffering: no, is not cut by the non-streaming deadline, ends with `event: error` on an idle timeout or when upstream-ai dies mid-stream (never after half an event).
import t from 'tap'
import { startUpstream, answerSse } from '../helpers/upstream.js'
import { bearer, completionLine, openStream, startGateway } from '../helpers/gateway.js'

const CHAT = { messages: [{ role: 'user', content: 'hello' }] }

t.test('streaming', async (t) => {
  const upstream = await startUpstream(t)
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    AI_ENGINE_TIMEOUT_SECONDS: '1',
    AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS: '1'
  })

  t.test('events arrive as upstream-ai sends them, not all at the end', async (t) => {
    upstream.behave(answerSse({ events: ['{"delta":"a"}', '{"delta":"b"}', '{"delta":"c"}', '{"delta":"d"}', '[DONE]'], intervalMs: 300 }))
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: { ...(await bearer()), 'x-request-id': 'sse-1' }, body: CHAT })
    t.equal(stream.res.statusCode, 200)
    t.match(stream.res.headers['content-type'], /^text\/event-stream/)
    t.equal(stream.res.headers['x-accel-buffering'], 'no', 'nginx is told not to buffer')
    t.equal(stream.res.headers['content-length'], undefined)
    t.equal(stream.res.headers['x-request-id'], 'sse-1')
    await stream.ended
    t.same(stream.events.map((event) => event.data), ['{"delta":"a"}', '{"delta":"b"}', '{"delta":"c"}', '{"delta":"d"}', '[DONE]'])
    const [first, last] = [stream.events[0]!, stream.events.at(-1)!]
    t.ok(first.at < 250, `first event ${first.at} ms after the headers`)
    t.ok(last.at - first.at >= 900, `last event ${last.at - first.at} ms after the first (sent 1200 ms apart)`)
    t.ok(last.at > 1000, 'a 1.2 s stream outlives AI_ENGINE_TIMEOUT_SECONDS=1: streams only have an idle timeout')
    const line = await completionLine(gateway, 'sse-1')
    t.equal(line.stream, true)
    t.equal(line.status, 'success')
    t.equal(line.use_case, 'chat', 'a chat body without use_case logs as chat')
  })

  t.test('a stream that goes silent ends with event: error UPSTREAM_TIMEOUT, and the upstream call is aborted', async (t) => {
    upstream.behave(answerSse({ events: ['{"delta":"a"}'], then: 'hang' }))
    const before = upstream.requests.length
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: { ...(await bearer()), 'x-request-id': 'idle-1' }, body: CHAT })
    const { complete } = await stream.ended
    t.ok(complete, 'the stream is ended properly, not cut')
    t.equal(stream.events.length, 2)
    const error = stream.events[1]!
    t.equal(error.event, 'error')
    t.ok(error.at >= 800 && error.at < 4000, `after ${error.at} ms of silence (idle timeout 1 s)`)
    const envelope = JSON.parse(error.data)
    t.equal(envelope.error.type, 'UPSTREAM_TIMEOUT')
    t.equal(envelope.meta.request_id, 'idle-1')
    t.match(envelope.meta.trace_id, /^[0-9a-f]{32}$/)
    const received = await upstream.closed(await upstream.request(before + 1), 1000)
    t.ok(received.aborted)
    const line = await completionLine(gateway, 'idle-1')
    t.equal(line.status, 'error')
    t.equal(line.error_type, 'UPSTREAM_TIMEOUT')
    t.equal(line.http_status, 200, 'the status went out with the headers')
  })

  t.test('upstream-ai dying mid-stream ends the client stream with event: error', async (t) => {
    upstream.behave(answerSse({ events: ['{"delta":"a"}', '{"delta":"b"}'], intervalMs: 50, then: 'die' }))
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: { ...(await bearer()), 'x-request-id': 'died-1' }, body: CHAT })
    const { complete } = await stream.ended
    t.ok(complete)
    t.same(stream.events.map((event) => event.event), ['message', 'message', 'error'])
    t.equal(JSON.parse(stream.events[2]!.data).error.type, 'UPSTREAM_UNAVAILABLE')
    const line = await completionLine(gateway, 'died-1')
    t.equal(line.error_type, 'UPSTREAM_UNAVAILABLE')
    t.equal(line.client_aborted, false)
  })

  t.test('dying in the middle of an event: the half event never reaches the client', async (t) => {
    upstream.behave(answerSse({ events: ['{"delta":"a"}'], partial: 'data: {"delta":"tru', then: 'die' }))
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: await bearer(), body: CHAT })
    await stream.ended
    t.same(stream.events.map((event) => [event.event, event.event === 'error' ? JSON.parse(event.data).error.type : event.data]),
      [['message', '{"delta":"a"}'], ['error', 'UPSTREAM_UNAVAILABLE']])
  })

  t.test('"stream": false gets the non-streaming deadline', async (t) => {
    upstream.behave(() => {})
    const started = Date.now()
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: await bearer(), body: { ...CHAT, stream: false } })
    await stream.ended
    t.equal(stream.res.statusCode, 504)
    t.ok(Date.now() - started < 4000)
  })

  t.test('a stream that never starts is cut by the idle timeout: 504 before any header', async (t) => {
    upstream.behave(() => {})
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: await bearer(), body: CHAT })
    await stream.ended
    t.equal(stream.res.statusCode, 504)
    t.match(stream.res.headers['content-type'], /^application\/json/)
  })
})
