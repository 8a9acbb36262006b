// upstream-ai against a fake OpenAI-compatible server: generate and chat (JSON and streamed) succeed, and the provider gets the right wire request.
import t from 'tap'
import { completionBody, startFakeOpenAi, streamChunks } from '../helpers/fake-openai.js'
import { openStream, send } from '../helpers/client.js'
import { completionLine, openAiEnv, SECRET_KEY, startUpstreamAi } from '../helpers/upstream.js'

const fake = await startFakeOpenAi(t)
const upstream = await startUpstreamAi(t, openAiEnv(fake.baseUrl, { OPENAI_MODEL_DEFAULT: 'default-model-x' }))

t.test('generate answers with the provider text, usage and meta', async (t) => {
  fake.answer({ kind: 'json', body: completionBody('Leo shines today.', { prompt_tokens: 42, completion_tokens: 7, total_tokens: 49 }, 'default-model-x-2024') })
  const before = fake.requests.length
  const answer = await send(`${upstream.url}/v1/ai/generate`, {
    body: { use_case: 'horoscope_daily', input: { sign: 'leo', date: '2026-01-01' }, context: { locale: 'en' } },
    headers: { 'x-request-id': 'req-generate-1', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'x-user-id': 'alice' }
  })
  t.equal(answer.status, 200)
  t.match(answer.headers['content-type'], /^application\/json/)
  t.same(answer.json, {
    text: 'Leo shines today.',
    usage: { input_tokens: 42, output_tokens: 7, total_tokens: 49 },
    meta: {
      request_id: 'req-generate-1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      provider: 'openai',
      model: 'default-model-x-2024',
      use_case: 'horoscope_daily',
      latency_ms: answer.json.meta.latency_ms,
      cached: false
    }
  })
  t.type(answer.json.meta.latency_ms, 'number')
  t.ok(answer.json.meta.latency_ms >= 0)

  t.equal(fake.requests.length, before + 1, 'one provider call')
  const sent = fake.requests.at(-1)!
  t.equal(sent.method, 'POST')
  t.equal(sent.path, '/v1/chat/completions')
  t.equal(sent.headers.authorization, `Bearer ${SECRET_KEY}`)
  t.match(sent.headers['content-type'], /^application\/json/)
  t.equal(sent.body.model, 'default-model-x', 'OPENAI_MODEL_DEFAULT when the request names no model')
  t.equal(sent.body.temperature, 0, 'generate defaults to temperature 0')
  t.equal(sent.body.stream, false)
  t.notOk('max_tokens' in sent.body)
  t.equal(sent.body.messages[0].role, 'system')
  t.match(sent.body.messages[0].content, /"locale":"en"/, 'context rendered into the system prompt')
  t.equal(sent.body.messages[1].role, 'user')
  t.match(sent.body.messages[1].content, /"date":"2026-01-01","sign":"leo"/, 'input rendered with sorted keys')

  const line = await completionLine(upstream, 'req-generate-1')
  t.match(line, {
    level: 'info',
    request_id: 'req-generate-1',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    user_id: 'alice',
    use_case: 'horoscope_daily',
    route: '/v1/ai/generate',
    http_status: 200,
    provider: 'openai',
    model: 'default-model-x-2024',
    tokens_used: 49,
    stream: false,
    client_aborted: false
  })
  t.notOk('error_type' in line)
  t.notMatch(upstream.stdout.join('\n'), /leo|Leo shines/, 'no inputs nor answers in the logs')
})

t.test('options are passed to the provider', async (t) => {
  fake.answer({ kind: 'json', body: completionBody('ok', { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }) })
  const answer = await send(`${upstream.url}/v1/ai/generate`, {
    body: { use_case: 'compatibility', input: { a: 'leo', b: 'virgo' }, options: { temperature: 1.2, max_tokens: 99, model: 'other-model' } }
  })
  t.equal(answer.status, 200)
  const sent = fake.requests.at(-1)!
  t.equal(sent.body.temperature, 1.2)
  t.equal(sent.body.max_tokens, 99)
  t.equal(sent.body.model, 'other-model')
})

t.test('chat with stream false answers JSON shaped like generate', async (t) => {
  fake.answer({ kind: 'json', body: completionBody('Hello there.', { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 }) })
  const answer = await send(`${upstream.url}/v1/ai/chat`, {
    body: { stream: false, messages: [{ role: 'user', content: 'What is a rising sign?' }] },
    headers: { 'x-request-id': 'req-chat-json' }
  })
  t.equal(answer.status, 200)
  t.equal(answer.json.text, 'Hello there.')
  t.same(answer.json.usage, { input_tokens: 11, output_tokens: 3, total_tokens: 14 })
  t.match(answer.json.meta, { request_id: 'req-chat-json', provider: 'openai', model: 'fake-model-1', use_case: 'chat', cached: false })
  const sent = fake.requests.at(-1)!
  t.equal(sent.body.stream, false)
  t.equal(sent.body.temperature, 0.7, 'chat defaults to temperature 0.7')
  t.same(sent.body.messages.slice(1), [{ role: 'user', content: 'What is a rising sign?' }])
  t.equal(sent.body.messages[0].role, 'system')
})

t.test('chat streams the provider deltas, then done with its usage numbers', async (t) => {
  fake.answer({ kind: 'sse', intervalMs: 5, chunks: streamChunks(['The Moon ', 'is in ', 'Cancer.'], { prompt_tokens: 31, completion_tokens: 5, total_tokens: 36 }) })
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, {
    body: { use_case: 'chat', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Where is the Moon?' }] },
    headers: { 'x-request-id': 'req-chat-stream' }
  })
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)
  t.equal(stream.headers['x-accel-buffering'], 'no')
  await stream.ended
  const events = stream.events()
  t.same(events.map((event) => event.event), ['delta', 'delta', 'delta', 'done'])
  t.same(events.slice(0, 3).map((event) => event.data), [{ text: 'The Moon ' }, { text: 'is in ' }, { text: 'Cancer.' }])
  t.same(events[3]!.data.usage, { input_tokens: 31, output_tokens: 5, total_tokens: 36 })
  t.match(events[3]!.data.meta, { request_id: 'req-chat-stream', provider: 'openai', model: 'fake-model-1', use_case: 'chat', cached: false })

  const sent = fake.requests.at(-1)!
  t.equal(sent.body.stream, true)
  t.same(sent.body.stream_options, { include_usage: true }, 'asks for usage in the stream')
  t.equal(sent.headers.accept, 'text/event-stream')
  t.same(sent.body.messages.slice(1), [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Where is the Moon?' }])

  const line = await completionLine(upstream, 'req-chat-stream')
  t.match(line, { http_status: 200, stream: true, tokens_used: 36, client_aborted: false })
  t.notMatch(upstream.stdout.join('\n'), /Where is the Moon|Cancer/, 'no message contents in the logs')
})

t.test('connections to the provider are kept alive and reused', async (t) => {
  fake.answer({ kind: 'json', body: completionBody('ok', { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }) })
  for (let index = 0; index < 3; index++) {
    const answer = await send(`${upstream.url}/v1/ai/generate`, { body: { use_case: 'chat', input: { message: `q${index}` } } })
    t.equal(answer.status, 200)
  }
  const ports = new Set(fake.requests.slice(-3).map((request) => request.remotePort))
  t.equal(ports.size, 1, 'the three calls share one connection')
})
