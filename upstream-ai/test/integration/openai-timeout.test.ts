// upstream-ai with AI_ENGINE_TIMEOUT_SECONDS=1 against a fake OpenAI server that hangs: 504 UPSTREAM_TIMEOUT (or event: error mid-stream), and the provider call is cancelled.
import t from 'tap'
import { waitFor } from '../../../common/testkit/ports.js'
import { startFakeOpenAi, streamChunks, type RecordedRequest } from '../helpers/fake-openai.js'
import { openStream, send } from '../helpers/client.js'
import { completionLine, openAiEnv, startUpstreamAi } from '../helpers/upstream.js'

const fake = await startFakeOpenAi(t)
const upstream = await startUpstreamAi(t, openAiEnv(fake.baseUrl, { AI_ENGINE_TIMEOUT_SECONDS: '1' }))

// The three cases run at once (each waits a second); the fake tells them apart by the last message.
t.jobs = 3
const lastMessage = (request: RecordedRequest): string => String(request.body?.messages?.at(-1)?.content)
fake.answer((request) => lastMessage(request).includes('stall')
  // One delta, then the next chunk would come after 10 s.
  ? { kind: 'sse', intervalMs: 10_000, chunks: streamChunks(['Saturn ', 'returns.'], { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }).slice(1) }
  : { kind: 'hang' })
const callFor = async (marker: string): Promise<RecordedRequest> =>
  await waitFor(() => fake.requests.find((request) => lastMessage(request).includes(marker)), { what: `the provider call for ${marker}` })

t.test('a provider that never answers → 504 UPSTREAM_TIMEOUT after about a second', async (t) => {
  const started = Date.now()
  const answer = await send(`${upstream.url}/v1/ai/generate`, {
    body: { use_case: 'chat', input: { message: 'hang-json' } },
    headers: { 'x-request-id': 'req-timeout-json' }
  })
  const elapsed = Date.now() - started
  t.equal(answer.status, 504)
  t.match(answer.json, { error: { type: 'UPSTREAM_TIMEOUT', message: /within 1 s/ }, meta: { request_id: 'req-timeout-json' } })
  t.ok(elapsed >= 900, `waited for the deadline (${elapsed} ms)`)
  t.ok(elapsed < 5000, `but not much longer (${elapsed} ms)`)
  const call = await callFor('hang-json')
  await waitFor(() => call.abortedAt, { what: 'the provider call to be cancelled' })
  t.match(await completionLine(upstream, 'req-timeout-json'), { http_status: 504, error_type: 'UPSTREAM_TIMEOUT', client_aborted: false })
})

t.test('a stream whose first event never comes → 504 JSON', async (t) => {
  const answer = await send(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'hang-stream' }] } })
  t.equal(answer.status, 504)
  t.match(answer.headers['content-type'], /^application\/json/)
  t.equal(answer.json.error.type, 'UPSTREAM_TIMEOUT')
})

t.test('a stream that stalls after it began ends with event: error UPSTREAM_TIMEOUT', async (t) => {
  const started = Date.now()
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, {
    body: { messages: [{ role: 'user', content: 'stall' }] },
    headers: { 'x-request-id': 'req-timeout-stream' }
  })
  t.equal(stream.status, 200)
  await stream.ended
  const elapsed = Date.now() - started
  const events = stream.events()
  t.same(events.map((event) => event.event), ['delta', 'error'])
  t.equal(events[0]!.data.text, 'Saturn ')
  t.equal(events[1]!.data.error.type, 'UPSTREAM_TIMEOUT')
  t.ok(elapsed < 5000, `ended by the deadline, not by the provider (${elapsed} ms)`)
  const call = await callFor('stall')
  await waitFor(() => call.abortedAt, { what: 'the provider stream to be cancelled' })
  t.match(await completionLine(upstream, 'req-timeout-stream'), { http_status: 200, error_type: 'UPSTREAM_TIMEOUT' })
})
