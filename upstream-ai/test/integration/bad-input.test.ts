// upstream-ai refuses bad requests with the error envelope: malformed JSON, wrong types naming the field, unknown use_case, oversized bodies, unknown routes and wrong methods.
import t from 'tap'
import { send } from '../helpers/client.js'
import { completionLine, startUpstreamAi } from '../helpers/upstream.js'

const upstream = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '0', AI_UPSTREAM_MAX_BODY_BYTES: '2048' })
const generateUrl = `${upstream.url}/v1/ai/generate`
const chatUrl = `${upstream.url}/v1/ai/chat`

function envelope (type: string, message?: RegExp): Record<string, unknown> {
  return { error: { type, message: message ?? String }, meta: { request_id: String, trace_id: /^[0-9a-f]{32}$/ } }
}

t.test('malformed JSON → 400 INVALID_REQUEST', async (t) => {
  for (const [url, body] of [[generateUrl, '{"use_case": "chat",'], [chatUrl, 'not json at all'], [generateUrl, '[1,2]'], [chatUrl, '']] as const) {
    const answer = await send(url, { method: 'POST', body, headers: { 'x-request-id': 'req-malformed' } })
    t.equal(answer.status, 400, JSON.stringify(body))
    t.match(answer.json, envelope('INVALID_REQUEST', /JSON|empty/))
  }
  t.match(await completionLine(upstream, 'req-malformed'), { http_status: 400, error_type: 'INVALID_REQUEST' })
})

t.test('wrong types → 400 INVALID_REQUEST naming the field', async (t) => {
  const cases: Array<[string, unknown, string]> = [
    [generateUrl, { input: {} }, 'use_case'],
    [generateUrl, { use_case: 7, input: {} }, 'use_case'],
    [generateUrl, { use_case: 'chat' }, 'input'],
    [generateUrl, { use_case: 'chat', input: 'text' }, 'input'],
    [generateUrl, { use_case: 'chat', input: {}, context: [1] }, 'context'],
    [generateUrl, { use_case: 'chat', input: {}, options: 'fast' }, 'options'],
    [generateUrl, { use_case: 'chat', input: {}, options: { temperature: 2.5 } }, 'options.temperature'],
    [generateUrl, { use_case: 'chat', input: {}, options: { temperature: '0.5' } }, 'options.temperature'],
    [generateUrl, { use_case: 'chat', input: {}, options: { max_tokens: 1.5 } }, 'options.max_tokens'],
    [generateUrl, { use_case: 'chat', input: {}, options: { max_tokens: 0 } }, 'options.max_tokens'],
    [generateUrl, { use_case: 'chat', input: {}, options: { model: '' } }, 'options.model'],
    [generateUrl, { use_case: 'chat', input: {}, options: { temprature: 1 } }, 'options.temprature'],
    [chatUrl, {}, 'messages'],
    [chatUrl, { messages: {} }, 'messages'],
    [chatUrl, { messages: [] }, 'messages'],
    [chatUrl, { messages: ['hi'] }, 'messages[0]'],
    [chatUrl, { messages: [{ role: 'user', content: 'ok' }, { role: 'robot', content: 'x' }] }, 'messages[1].role'],
    [chatUrl, { messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    [chatUrl, { messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
    [chatUrl, { messages: [{ role: 'user', content: 'x' }], use_case: 3 }, 'use_case']
  ]
  for (const [url, body, field] of cases) {
    const answer = await send(url, { body })
    t.equal(answer.status, 400, `${JSON.stringify(body)} → 400`)
    t.match(answer.json, envelope('INVALID_REQUEST'), field)
    t.equal(answer.json.error.field, field, `${JSON.stringify(body)} names ${field}`)
    t.ok(answer.json.error.message.startsWith(field), `the message names ${field}: ${answer.json.error.message}`)
  }
})

t.test('unknown use_case → 400 UNKNOWN_USE_CASE, for generate and chat', async (t) => {
  const generate = await send(generateUrl, { body: { use_case: 'tarot_reading', input: {} } })
  t.equal(generate.status, 400)
  t.match(generate.json, envelope('UNKNOWN_USE_CASE', /horoscope_daily/))
  const chat = await send(chatUrl, { body: { use_case: '__proto__', messages: [{ role: 'user', content: 'x' }] } })
  t.equal(chat.status, 400)
  t.match(chat.json, envelope('UNKNOWN_USE_CASE'))
})

t.test('a body over AI_UPSTREAM_MAX_BODY_BYTES → 413 PAYLOAD_TOO_LARGE', async (t) => {
  const big = { use_case: 'chat', input: { message: 'x'.repeat(4096) } }
  const answer = await send(generateUrl, { body: big })
  t.equal(answer.status, 413)
  t.match(answer.json, envelope('PAYLOAD_TOO_LARGE', /2048 bytes/))
  t.equal(answer.headers.connection, 'close')
  // Just under the limit is fine.
  const fits = await send(generateUrl, { body: { use_case: 'chat', input: { message: 'x'.repeat(1900) } } })
  t.equal(fits.status, 200)
})

t.test('unknown route → 404 NOT_FOUND', async (t) => {
  for (const path of ['/v1/ai/unknown', '/', '/v1/ai/generate/extra', '/health/ready']) {
    const answer = await send(`${upstream.url}${path}`)
    t.equal(answer.status, 404, path)
    t.match(answer.json, envelope('NOT_FOUND'))
  }
})

t.test('wrong method → 405 METHOD_NOT_ALLOWED with Allow', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['GET', '/v1/ai/generate', 'POST'],
    ['PUT', '/v1/ai/chat', 'POST'],
    ['POST', '/health', 'GET, HEAD'],
    ['DELETE', '/health/live', 'GET, HEAD']
  ]
  for (const [method, path, allow] of cases) {
    const answer = await send(`${upstream.url}${path}`, { method })
    t.equal(answer.status, 405, `${method} ${path}`)
    t.equal(answer.headers.allow, allow)
    t.match(answer.json, envelope('METHOD_NOT_ALLOWED'))
  }
})

t.test('a query string does not change the route', async (t) => {
  const answer = await send(`${upstream.url}/health?verbose=1`)
  t.equal(answer.status, 200)
})

t.test('after all of this the process is still up and serving', async (t) => {
  t.equal(upstream.child.exitCode, null)
  const answer = await send(generateUrl, { body: { use_case: 'chat', input: { message: 'still there?' } } })
  t.equal(answer.status, 200)
})
