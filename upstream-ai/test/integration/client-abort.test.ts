// A client that disconnects from upstream-ai aborts the provider call: the fake OpenAI server sees its request closed within about a second.
import t from 'tap'
import { waitFor } from '../../../common/testkit/ports.js'
import { startFakeOpenAi, streamChunks } from '../helpers/fake-openai.js'
import { begin, openStream } from '../helpers/client.js'
import { completionLine, openAiEnv, startUpstreamAi } from '../helpers/upstream.js'

const fake = await startFakeOpenAi(t)
// The default 30 s deadline: any cancellation seen here comes from the client, not from a timeout.
const upstream = await startUpstreamAi(t, openAiEnv(fake.baseUrl))
const MAX_PROPAGATION_MS = 1500

t.test('disconnecting from a stream cancels the provider stream', async (t) => {
  const pieces = Array.from({ length: 200 }, (_, index) => `piece ${index} `)
  fake.answer({ kind: 'sse', intervalMs: 50, chunks: streamChunks(pieces, { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }) })
  const before = fake.requests.length
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, {
    body: { messages: [{ role: 'user', content: 'a long answer please' }] },
    headers: { 'x-request-id': 'req-abort-stream' }
  })
  await stream.waitForEvents(2)
  const call = fake.requests[before]!
  t.equal(call.abortedAt, undefined, 'the provider stream is still going')
  const abortedAt = stream.abort()
  const seenAt = await waitFor(() => call.abortedAt, { timeoutMs: 5000, what: 'the fake to see its request closed' })
  t.ok(seenAt - abortedAt < MAX_PROPAGATION_MS, `the provider saw the abort ${seenAt - abortedAt} ms after the client left`)
  t.match(await completionLine(upstream, 'req-abort-stream'), { client_aborted: true, stream: true, http_status: 499, status: 'error' })
})

t.test('disconnecting while waiting for a JSON answer cancels the provider call', async (t) => {
  fake.answer({ kind: 'hang' })
  const before = fake.requests.length
  const pending = begin(`${upstream.url}/v1/ai/generate`, {
    body: { use_case: 'horoscope_daily', input: { sign: 'pisces' } },
    headers: { 'x-request-id': 'req-abort-json' }
  })
  const call = await waitFor(() => fake.requests[before], { what: 'the provider call' })
  const abortedAt = pending.abort()
  const seenAt = await waitFor(() => call.abortedAt, { timeoutMs: 5000, what: 'the fake to see its request closed' })
  t.ok(seenAt - abortedAt < MAX_PROPAGATION_MS, `the provider saw the abort ${seenAt - abortedAt} ms after the client left`)
  t.match(await completionLine(upstream, 'req-abort-json'), { client_aborted: true, http_status: 499, stream: false })
})

t.test('disconnecting before a stream began cancels the provider call', async (t) => {
  fake.answer({ kind: 'hang' })
  const before = fake.requests.length
  const pending = begin(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'x' }] } })
  const call = await waitFor(() => fake.requests[before], { what: 'the provider call' })
  const abortedAt = pending.abort()
  const seenAt = await waitFor(() => call.abortedAt, { timeoutMs: 5000, what: 'the fake to see its request closed' })
  t.ok(seenAt - abortedAt < MAX_PROPAGATION_MS, `the provider saw the abort ${seenAt - abortedAt} ms after the client left`)
  // Still serving after all this.
  const { send } = await import('../helpers/client.js')
  t.equal((await send(`${upstream.url}/health/live`)).status, 200)
})
