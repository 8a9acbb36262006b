// upstream-ai with the mock provider over HTTP: the same input gives the same text, chat streams several deltas then done, health says mock, logs carry no contents.
import t from 'tap'
import { openStream, send } from '../helpers/client.js'
import { completionLine, startUpstreamAi } from '../helpers/upstream.js'

// No OPENAI_API_KEY and no AI_PROVIDER: the mock is chosen by default.
const upstream = await startUpstreamAi(t, { MOCK_PROVIDER_LATENCY_MS: '5' })

t.test('start-up says the mock provider was chosen because no key is set', async (t) => {
  const line = upstream.logs().find((entry) => entry.level === 'warn' && entry.provider === 'mock')
  t.ok(line, 'a warn line names the mock provider')
  t.match(String(line?.msg), /OPENAI_API_KEY is not set/)
})

t.test('generate twice with the same input gives the same text; another input another text', async (t) => {
  const body = { use_case: 'horoscope_daily', input: { sign: 'taurus', date: '2026-03-01' } }
  const first = await send(`${upstream.url}/v1/ai/generate`, { body })
  // Same object, keys in another order: same prompt, same text.
  const second = await send(`${upstream.url}/v1/ai/generate`, { body: { input: { date: '2026-03-01', sign: 'taurus' }, use_case: 'horoscope_daily' } })
  const other = await send(`${upstream.url}/v1/ai/generate`, { body: { use_case: 'horoscope_daily', input: { sign: 'gemini', date: '2026-03-01' } } })
  t.equal(first.status, 200)
  t.type(first.json.text, 'string')
  t.ok(first.json.text.length > 20)
  t.equal(second.json.text, first.json.text)
  t.not(other.json.text, first.json.text)
  t.same(second.json.usage, first.json.usage)
  t.ok(first.json.usage.input_tokens > 0)
  t.ok(first.json.usage.output_tokens > 0)
  t.equal(first.json.usage.total_tokens, first.json.usage.input_tokens + first.json.usage.output_tokens)
  t.match(first.json.meta, { provider: 'mock', model: 'mock-1', use_case: 'horoscope_daily', cached: false })
  t.not(first.json.meta.request_id, second.json.meta.request_id)
})

t.test('chat streams several deltas, then done; the deltas make the same text as the JSON answer', async (t) => {
  const messages = [{ role: 'user', content: 'Is Mercury retrograde?' }]
  const stream = await openStream(`${upstream.url}/v1/ai/chat`, { body: { messages }, headers: { 'x-request-id': 'req-mock-stream', 'x-user-id': 'bob' } })
  t.equal(stream.status, 200)
  await stream.ended
  const events = stream.events()
  const deltas = events.filter((event) => event.event === 'delta')
  t.ok(deltas.length >= 3, `several deltas (${deltas.length})`)
  t.same(events.map((event) => event.event), [...deltas.map(() => 'delta'), 'done'])
  const done = events.at(-1)!.data
  t.match(done.meta, { request_id: 'req-mock-stream', provider: 'mock', use_case: 'chat', cached: false })
  t.ok(done.usage.output_tokens > 0)

  const json = await send(`${upstream.url}/v1/ai/chat`, { body: { messages, stream: false } })
  t.equal(deltas.map((event) => event.data.text).join(''), json.json.text)
  t.same(json.json.usage, done.usage)

  const line = await completionLine(upstream, 'req-mock-stream')
  t.match(line, { user_id: 'bob', provider: 'mock', stream: true, http_status: 200, tokens_used: done.usage.total_tokens })
  const output = upstream.stdout.join('\n')
  t.notOk(output.includes('Mercury retrograde'), 'no message contents in the logs')
  t.notOk(output.includes(json.json.text.slice(0, 30)), 'no answers in the logs')
})

t.test('max_tokens shortens the mock answer', async (t) => {
  const body = { use_case: 'compatibility', input: { a: 'leo', b: 'aries' } }
  const full = await send(`${upstream.url}/v1/ai/generate`, { body })
  const short = await send(`${upstream.url}/v1/ai/generate`, { body: { ...body, options: { max_tokens: 5 } } })
  t.ok(short.json.text.length <= 20, `at most 5 tokens of 4 characters: ${JSON.stringify(short.json.text)}`)
  t.ok(full.json.text.startsWith(short.json.text))
  t.ok(short.json.usage.output_tokens <= 5)
})

t.test('health says healthy, provider mock; live says healthy', async (t) => {
  const health = await send(`${upstream.url}/health`)
  t.equal(health.status, 200)
  t.match(health.json, { status: 'healthy', provider: 'mock', model: 'mock-1', draining: false })
  const live = await send(`${upstream.url}/health/live`)
  t.equal(live.status, 200)
  t.same(live.json, { status: 'healthy' })
})

t.test('an X-Request-Id is kept and echoed, a broken one replaced; a traceparent is continued', async (t) => {
  const kept = await send(`${upstream.url}/v1/ai/generate`, {
    body: { use_case: 'chat', input: { message: 'hi' } },
    headers: { 'x-request-id': 'abc-123', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }
  })
  t.equal(kept.headers['x-request-id'], 'abc-123')
  t.equal(kept.json.meta.request_id, 'abc-123')
  t.equal(kept.json.meta.trace_id, '0af7651916cd43dd8448eb211c80319c')
  const replaced = await send(`${upstream.url}/v1/ai/generate`, {
    body: { use_case: 'chat', input: { message: 'hi' } },
    headers: { 'x-request-id': 'bad id with spaces', traceparent: 'garbage' }
  })
  t.match(replaced.json.meta.request_id, /^[0-9a-f-]{36}$/)
  t.equal(replaced.headers['x-request-id'], replaced.json.meta.request_id)
  t.match(replaced.json.meta.trace_id, /^[0-9a-f]{32}$/)
})
