// Bounded body reading and the error envelope, over a real node:http server on loopback.
import t from 'tap'
import { createServer, request, type Server } from 'node:http'
import { once } from 'node:events'
import { ApiError, toApiError } from '../src/errors.js'
import { isJsonContentType, parseJsonObject, readBody, sendError, sendJson } from '../src/http.js'

async function listen (server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

function startEchoServer (t: { teardown: (fn: () => void) => void }, maxBytes: number): Promise<number> {
  const server = createServer((req, res) => {
    readBody(req, maxBytes)
      .then((body) => sendJson(res, 200, parseJsonObject(body)))
      .catch((error: unknown) => sendError(res, toApiError(error), { request_id: 'r-1' }))
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return listen(server)
}

async function post (port: number, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers })
  if (body !== undefined) req.end(body)
  else req.end()
  const [res] = await once(req, 'response') as [import('node:http').IncomingMessage]
  let text = ''
  for await (const chunk of res) text += String(chunk)
  return { status: res.statusCode ?? 0, body: text, headers: res.headers }
}

t.test('a JSON object is read and echoed', async (t) => {
  const port = await startEchoServer(t, 100)
  const res = await post(port, '{"a":[1,2]}', { 'content-type': 'application/json' })
  t.equal(res.status, 200)
  t.same(JSON.parse(res.body), { a: [1, 2] })
})

t.test('malformed, empty and non-object bodies are INVALID_REQUEST', async (t) => {
  const port = await startEchoServer(t, 100)
  for (const [body, message] of [['{"a":', /not valid JSON/], ['', /empty/], ['[1]', /JSON object/], ['\uFEFF{}', /byte order mark/], ['null', /JSON object/]] as const) {
    const res = await post(port, body)
    t.equal(res.status, 400)
    const envelope = JSON.parse(res.body)
    t.equal(envelope.error.type, 'INVALID_REQUEST')
    t.match(envelope.error.message, message)
    t.same(envelope.meta, { request_id: 'r-1' })
  }
})

t.test('a declared oversized body is refused before it is read', async (t) => {
  const port = await startEchoServer(t, 100)
  const res = await post(port, 'x'.repeat(101))
  t.equal(res.status, 413)
  t.equal(JSON.parse(res.body).error.type, 'PAYLOAD_TOO_LARGE')
  t.equal(res.headers.connection, 'close')
})

t.test('a streamed oversized body is refused as soon as it crosses the limit', async (t) => {
  const port = await startEchoServer(t, 1000)
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'transfer-encoding': 'chunked' } })
  req.on('error', () => {})
  req.write('x'.repeat(600))
  req.write('x'.repeat(600))
  // The body is not finished: the answer must come anyway.
  const [res] = await once(req, 'response') as [import('node:http').IncomingMessage]
  t.equal(res.statusCode, 413)
  req.destroy()
})

t.test('errors after headers were sent cut the connection instead of writing JSON', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write('event: delta\ndata: {}\n\n')
    setTimeout(() => sendError(res, new ApiError('UPSTREAM_TIMEOUT'), { request_id: 'r' }), 20)
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = await listen(server)
  const req = request({ host: '127.0.0.1', port, path: '/' }).end()
  const [res] = await once(req, 'response') as [import('node:http').IncomingMessage]
  let text = ''
  const ended = await new Promise<string>((resolve) => {
    res.on('data', (chunk) => { text += String(chunk) })
    res.on('end', () => resolve('end'))
    res.on('aborted', () => resolve('aborted'))
    res.on('error', () => resolve('error'))
  })
  t.not(ended, 'end', 'the client sees the stream cut, not a clean end')
  t.notMatch(text, /UPSTREAM_TIMEOUT/)
})

t.test('content types', async (t) => {
  for (const ok of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/problem+json']) t.ok(isJsonContentType(ok), ok)
  for (const bad of [undefined, '', 'text/plain', 'application/jsonx', 'multipart/form-data', 'application/x-www-form-urlencoded']) t.notOk(isJsonContentType(bad), String(bad))
})

t.test('errors carry their extras and headers; unknown errors hide their message', async (t) => {
  const error = new ApiError('PROVIDER_RATE_LIMITED', 'slow down', { extra: { retry_after_ms: 1500 }, headers: { 'retry-after': '2' } })
  t.equal(error.status, 503)
  t.same(error.extra, { retry_after_ms: 1500 })
  const internal = toApiError(new Error('db password is hunter2'))
  t.equal(internal.type, 'INTERNAL_ERROR')
  t.equal(internal.status, 500)
  t.notMatch(internal.message, /hunter2/)
})
