// upstream-ai against a fake OpenAI server that fails: 429, 5xx, 401/403, malformed answers and a stream cut mid-way map to the right errors, and the key never leaks.
import t from 'tap'
import { completionBody, startFakeOpenAi, streamChunks } from '../helpers/fake-openai.js'
import { openStream, send } from '../helpers/client.js'
import { completionLine, openAiEnv, SECRET_KEY, startUpstreamAi } from '../helpers/upstream.js'

const fake = await startFakeOpenAi(t)
const upstream = await startUpstreamAi(t, openAiEnv(fake.baseUrl))
const generate = { use_case: 'horoscope_daily', input: { sign: 'aries' } }
let counter = 0

async function callGenerate (): Promise<{ status: number; json: any; headers: Record<string, unknown>; requestId: string }> {
  const requestId = `req-errors-${++counter}`
  const answer = await send(`${upstream.url}/v1/ai/generate`, { body: generate, headers: { 'x-request-id': requestId } })
  return { status: answer.status, json: answer.json, headers: answer.headers, requestId }
}

/** A t.match pattern for the error envelope. */
function envelope (type: string, requestId: string): Record<string, unknown> {
  return { error: { type, message: String }, meta: { request_id: requestId, trace_id: /^[0-9a-f]{32}$/ } }
}

t.test('429 with retry-after (seconds) → 503 PROVIDER_RATE_LIMITED with retry_after_ms', async (t) => {
  fake.answer({ kind: 'json', status: 429, headers: { 'retry-after': '7' }, body: { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } } })
  const answer = await callGenerate()
  t.equal(answer.status, 503)
  t.match(answer.json, envelope('PROVIDER_RATE_LIMITED', answer.requestId))
  t.equal(answer.json.error.retry_after_ms, 7000)
  t.equal(answer.headers['retry-after'], '7')
  t.match(await completionLine(upstream, answer.requestId), {
    http_status: 503, error_type: 'PROVIDER_RATE_LIMITED', provider_status: 429, provider_error_code: 'rate_limit_exceeded'
  })
})

t.test('429 with retry-after-ms wins over retry-after', async (t) => {
  fake.answer({ kind: 'json', status: 429, headers: { 'retry-after-ms': '1500', 'retry-after': '9' }, body: { error: { message: 'slow down' } } })
  const answer = await callGenerate()
  t.equal(answer.status, 503)
  t.equal(answer.json.error.retry_after_ms, 1500)
  t.equal(answer.headers['retry-after'], '2')
})

t.test('429 without a hint → 503 without retry_after_ms', async (t) => {
  fake.answer({ kind: 'json', status: 429, body: { error: { message: 'quota' } } })
  const answer = await callGenerate()
  t.equal(answer.status, 503)
  t.match(answer.json, envelope('PROVIDER_RATE_LIMITED', answer.requestId))
  t.notOk('retry_after_ms' in answer.json.error)
  t.notOk('retry-after' in answer.headers)
})

t.test('500 → 502 PROVIDER_ERROR', async (t) => {
  fake.answer({ kind: 'json', status: 500, body: { error: { message: 'The server had an error while processing your request.', type: 'server_error' } } })
  const answer = await callGenerate()
  t.equal(answer.status, 502)
  t.match(answer.json, envelope('PROVIDER_ERROR', answer.requestId))
  t.match(answer.json.error.message, /HTTP 500/)
  t.notMatch(answer.json.error.message, /processing your request/, 'the provider\'s own message is not passed on')
  t.match(await completionLine(upstream, answer.requestId), { http_status: 502, error_type: 'PROVIDER_ERROR', provider_status: 500 })
})

t.test('401 and 403 → 502 PROVIDER_ERROR saying the credentials were refused; the key appears nowhere', async (t) => {
  for (const status of [401, 403]) {
    // Real providers echo part of the key back; this fake echoes all of it.
    fake.answer({ kind: 'json', status, body: { error: { message: `Incorrect API key provided: ${SECRET_KEY}`, type: 'invalid_request_error', code: 'invalid_api_key' } } })
    const raw = await send(`${upstream.url}/v1/ai/generate`, { body: generate, headers: { 'x-request-id': `req-key-${status}` } })
    t.equal(raw.status, 502)
    t.equal(raw.json.error.type, 'PROVIDER_ERROR')
    t.match(raw.json.error.message, /refused our credentials/)
    t.notOk(raw.text.includes(SECRET_KEY), 'not in the body')
    t.notOk(JSON.stringify(raw.headers).includes(SECRET_KEY), 'not in the headers')
    t.match(await completionLine(upstream, `req-key-${status}`), { provider_status: status, provider_error_code: 'invalid_api_key' })
  }
  // Same through a stream that fails before it began.
  const stream = await send(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'hi' }] } })
  t.equal(stream.status, 502)
  t.notOk(stream.text.includes(SECRET_KEY))
  const output = [...upstream.stdout, ...upstream.stderr].join('\n')
  t.notOk(output.includes(SECRET_KEY), 'not in upstream-ai\'s stdout or stderr')
  t.notOk(output.includes('SECRET'), 'not even a part of it')
})

t.test('other 4xx → 502 PROVIDER_ERROR', async (t) => {
  fake.answer({ kind: 'json', status: 400, body: { error: { message: 'bad model', code: 'model_not_found' } } })
  const answer = await callGenerate()
  t.equal(answer.status, 502)
  t.match(answer.json.error.message, /rejected the request \(HTTP 400\)/)
})

t.test('malformed answers → 502 PROVIDER_ERROR', async (t) => {
  const cases: Array<{ name: string; body: unknown; message: RegExp }> = [
    { name: 'not JSON', body: '<html>502 Bad Gateway</html>', message: /malformed JSON/ },
    { name: 'JSON but not an object', body: '[1, 2]', message: /malformed JSON/ },
    { name: 'no choices', body: { id: 'x', usage: { prompt_tokens: 1 } }, message: /no choices/ },
    { name: 'empty choices', body: { choices: [] }, message: /no choices/ },
    { name: 'content not a string', body: { choices: [{ message: { role: 'assistant', content: 42 } }] }, message: /without text/ }
  ]
  for (const { name, body, message } of cases) {
    fake.answer({ kind: 'json', body })
    const answer = await callGenerate()
    t.equal(answer.status, 502, name)
    t.match(answer.json, envelope('PROVIDER_ERROR', answer.requestId))
    t.match(answer.json.error.message, message, name)
  }
})

t.test('a 200 without usage still answers, with zero counts', async (t) => {
  fake.answer({ kind: 'json', body: { choices: [{ message: { role: 'assistant', content: 'no usage here' } }] } })
  const answer = await callGenerate()
  t.equal(answer.status, 200)
  t.equal(answer.json.text, 'no usage here')
  t.same(answer.json.usage, { input_tokens: 0, output_tokens: 0, total_tokens: 0 })
})

t.test('a stream that fails after it began ends with event: error', async (t) => {
  // Two text chunks arrive; once the client has them, the connection drops.
  let clientHasThem!: () => void
  const gate = new Promise<void>((resolve) => { clientHasThem = resolve })
  fake.answer({ kind: 'sse', chunks: streamChunks(['Mercury ', 'is ', 'retrograde.'], { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }), cutAfter: 3, gate })
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, {
    body: { messages: [{ role: 'user', content: 'Tell me' }] },
    headers: { 'x-request-id': 'req-stream-cut' }
  })
  t.equal(stream.status, 200)
  await stream.waitForEvents(2)
  clientHasThem()
  await stream.ended
  const events = stream.events()
  t.same(events.map((event) => event.event), ['delta', 'delta', 'error'])
  t.same(events.slice(0, 2).map((event) => event.data.text), ['Mercury ', 'is '])
  t.equal(events[2]!.data.error.type, 'PROVIDER_ERROR')
  t.equal(events[2]!.data.meta.request_id, 'req-stream-cut')
  t.match(await completionLine(upstream, 'req-stream-cut'), { http_status: 200, stream: true, error_type: 'PROVIDER_ERROR', client_aborted: false })
})

t.test('an error chunk inside the stream ends it with event: error', async (t) => {
  fake.answer({
    kind: 'sse',
    chunks: [...streamChunks(['Venus '], { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }).slice(0, 2), { error: { message: `overloaded ${SECRET_KEY}`, code: 'overloaded' } }]
  })
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'x' }] } })
  await stream.ended
  const events = stream.events()
  t.same(events.map((event) => event.event), ['delta', 'error'])
  t.equal(events[1]!.data.error.type, 'PROVIDER_ERROR')
  t.notOk(JSON.stringify(events).includes(SECRET_KEY))
})

t.test('a malformed stream chunk ends it with event: error', async (t) => {
  fake.answer({ kind: 'sse', chunks: [...streamChunks(['Sun '], { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }).slice(0, 2), '{not json'] })
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'x' }] } })
  await stream.ended
  const events = stream.events()
  t.same(events.map((event) => event.event), ['delta', 'error'])
  t.match(events[1]!.data.error, { type: 'PROVIDER_ERROR', message: /malformed stream chunk/ })
})

t.test('a stream that fails before it began is a JSON error with its status', async (t) => {
  fake.answer({ kind: 'json', status: 429, headers: { 'retry-after': '3' }, body: { error: { message: 'later' } } })
  const answer = await send(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'x' }] }, headers: { 'x-request-id': 'req-stream-429' } })
  t.equal(answer.status, 503)
  t.match(answer.headers['content-type'], /^application\/json/)
  t.match(answer.json, envelope('PROVIDER_RATE_LIMITED', 'req-stream-429'))
  t.equal(answer.json.error.retry_after_ms, 3000)
})

t.test('a provider that ignores stream: true and answers JSON still streams', async (t) => {
  fake.answer({ kind: 'json', body: completionBody('All at once.', { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 }) })
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, { body: { messages: [{ role: 'user', content: 'x' }] } })
  await stream.ended
  const events = stream.events()
  t.same(events.map((event) => event.event), ['delta', 'done'])
  t.equal(events[0]!.data.text, 'All at once.')
  t.same(events[1]!.data.usage, { input_tokens: 4, output_tokens: 3, total_tokens: 7 })
})

t.test('an unreachable provider → 502 PROVIDER_ERROR, and the process keeps serving', async (t) => {
  const { freePort } = await import('../../../common/testkit/ports.js')
  const closedPort = await freePort()
  const lonely = await startUpstreamAi(t, openAiEnv(`http://127.0.0.1:${closedPort}/v1`))
  const answer = await send(`${lonely.url}/v1/ai/generate`, { body: generate, headers: { 'x-request-id': 'req-refused' } })
  t.equal(answer.status, 502)
  t.equal(answer.json.error.type, 'PROVIDER_ERROR')
  t.match(answer.json.error.message, /Could not reach/)
  t.match(await completionLine(lonely, 'req-refused'), { network_error_code: 'ECONNREFUSED' })
  const health = await send(`${lonely.url}/health`)
  t.equal(health.status, 200)
})
