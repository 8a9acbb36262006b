// Bad input: oversized bodies (413, streamed ones cut before the client finishes), non-JSON (415), malformed JSON and wrong field types (400), unknown routes (404) and methods (405 with Allow), and slow clients cut by the header and request timeouts (408).
import t from 'tap'
import { Agent, request } from 'node:http'
import { connect } from 'node:net'
import { startUpstream, echo } from '../helpers/upstream.js'
import { bearer, call, completionLine, startGateway } from '../helpers/gateway.js'

const MAX_BODY = 64 * 1024

t.test('bad input', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    AI_GATEWAY_MAX_BODY_BYTES: String(MAX_BODY),
    AI_GATEWAY_HEADERS_TIMEOUT_SECONDS: '1',
    AI_GATEWAY_REQUEST_BODY_TIMEOUT_SECONDS: '2'
  })
  const auth = await bearer()

  t.test('413 on a streamed (chunked) body, answered long before the client finished sending', async (t) => {
    const chunk = Buffer.alloc(16 * 1024, 'a')
    const totalChunks = 64 // 1 MiB: 16 times the limit, sent over about 1.3 s
    const result = await new Promise<{ status: number; body: string; sentChunks: number }>((resolve, reject) => {
      let sentChunks = 0
      let answered = false
      const req = request(`${gateway.url}/v1/ai/generate`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, agent: false }, (res) => {
        answered = true
        const sentAtAnswer = sentChunks
        const chunks: Buffer[] = []
        res.on('data', (data: Buffer) => chunks.push(data))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), sentChunks: sentAtAnswer }))
        res.on('error', reject)
      })
      // Writes after the gateway closed the connection fail: expected once the 413 is in.
      req.on('error', (error) => { if (!answered) reject(error) })
      req.write('{"use_case":"x","input":{"blob":"')
      const timer = setInterval(() => {
        if (answered || sentChunks >= totalChunks) {
          clearInterval(timer)
          if (!answered) req.end('"}}')
          return
        }
        req.write(chunk)
        sentChunks++
      }, 20)
    })
    t.equal(result.status, 413)
    t.equal(JSON.parse(result.body).error.type, 'PAYLOAD_TOO_LARGE')
    t.ok(result.sentChunks < totalChunks / 2, `answered after ${result.sentChunks} of ${totalChunks} chunks`)
    t.equal(upstream.requests.length, 0)
  })

  t.test('413 at once from Content-Length, with Connection: close', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: { blob: 'x'.repeat(MAX_BODY) } })
    t.equal(reply.status, 413)
    t.equal(reply.json().error.type, 'PAYLOAD_TOO_LARGE')
    t.equal(reply.headers.connection, 'close')
  })

  t.test('a body of exactly the limit is accepted', async (t) => {
    const prefix = '{"use_case":"x","pad":"'
    const body = `${prefix}${'p'.repeat(MAX_BODY - prefix.length - 2)}"}`
    t.equal(Buffer.byteLength(body), MAX_BODY)
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, 'content-type': 'application/json' }, body })
    t.equal(reply.status, 200)
  })

  for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', undefined]) {
    t.test(`415 for content type ${String(contentType)}`, async (t) => {
      const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, ...(contentType === undefined ? {} : { 'content-type': contentType }) }, body: '{"use_case":"x"}' })
      t.equal(reply.status, 415)
      t.equal(reply.json().error.type, 'UNSUPPORTED_MEDIA_TYPE')
    })
  }

  t.test('application/json with a charset and +json types are JSON', async (t) => {
    for (const contentType of ['application/json; charset=utf-8', 'application/vnd.api+json']) {
      const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, 'content-type': contentType }, body: '{"use_case":"x"}' })
      t.equal(reply.status, 200, contentType)
    }
  })

  const invalid: Array<[string, string, RegExp]> = [
    ['malformed JSON', '{"use_case": "x",', /not valid JSON/],
    ['an array', '[1, 2]', /JSON object/],
    ['an empty body', '', /empty/],
    ['use_case not a string', '{"use_case": 42}', /use_case must be a string/],
    ['options.temperature not a number', '{"use_case": "x", "options": {"temperature": "hot"}}', /options\.temperature must be a number/]
  ]
  for (const [label, body, message] of invalid) {
    t.test(`400 for ${label}`, async (t) => {
      const reply = await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, 'content-type': 'application/json' }, body })
      t.equal(reply.status, 400)
      t.equal(reply.json().error.type, 'INVALID_REQUEST')
      t.match(reply.json().error.message, message)
    })
  }

  t.test('fields the gateway does not read are left to upstream-ai', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: { use_case: 'x', options: { temperature: 0.7, max_tokens: 'many' }, input: 5 } })
    t.equal(reply.status, 200)
  })

  t.test('none of the refused bodies reached upstream-ai', async (t) => {
    t.equal(upstream.requests.length, 4, 'only the 4 accepted bodies above')
  })

  for (const path of ['/v1/ai/unknown', '/v1/ai/generate/', '/v1/ai/chat/extra', '/v1/ai', '/', '/v1/other']) {
    t.test(`404 for ${path}`, async (t) => {
      const reply = await call(gateway.url, path, { headers: auth, body: { use_case: 'x' } })
      t.equal(reply.status, 404)
      t.equal(reply.json().error.type, 'NOT_FOUND')
      t.ok(reply.headers['x-request-id'])
    })
  }

  for (const [method, path, allow] of [['GET', '/v1/ai/chat', 'POST'], ['PUT', '/v1/ai/generate', 'POST'], ['DELETE', '/v1/ai/chat', 'POST'], ['POST', '/health', 'GET, HEAD'], ['POST', '/health/live', 'GET, HEAD']] as const) {
    t.test(`405 for ${method} ${path}, with Allow: ${allow}`, async (t) => {
      const reply = await call(gateway.url, path, { method, headers: auth })
      t.equal(reply.status, 405)
      t.equal(reply.headers.allow, allow)
      t.equal(reply.json().error.type, 'METHOD_NOT_ALLOWED')
    })
  }

  t.test('a refusal with no body left unread keeps the connection alive', async (t) => {
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => { agent.destroy() })
    const reply = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      request(`${gateway.url}/v1/ai/chat`, { agent }, (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }))
      }).on('error', reject).end()
    })
    t.equal(reply.status, 405)
    t.equal(reply.connection, 'keep-alive')
  })

  t.test('a client that never finishes its headers is cut (408, connection closed)', async (t) => {
    const started = Date.now()
    const { text, closedAfter } = await new Promise<{ text: string; closedAfter: number }>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: gateway.port })
      let text = ''
      socket.on('data', (data: Buffer) => { text += data.toString('utf8') })
      socket.on('error', reject)
      socket.on('close', () => resolve({ text, closedAfter: Date.now() - started }))
      socket.write(`POST /v1/ai/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `)
    })
    t.match(text, /^HTTP\/1\.1 408/)
    t.ok(closedAfter < 5000, `closed after ${closedAfter} ms (headers timeout 1 s)`)
  })

  t.test('a client that never finishes its body is cut (408) and logged', async (t) => {
    const started = Date.now()
    const { text, closedAfter } = await new Promise<{ text: string; closedAfter: number }>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: gateway.port })
      let text = ''
      socket.on('data', (data: Buffer) => { text += data.toString('utf8') })
      socket.on('error', reject)
      socket.on('close', () => resolve({ text, closedAfter: Date.now() - started }))
      socket.write(`POST /v1/ai/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth.authorization}\r\n` +
        'X-Request-Id: slow-body\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"use_case":')
    })
    t.match(text, /^HTTP\/1\.1 408/)
    t.ok(closedAfter < 6000, `closed after ${closedAfter} ms (request timeout 2 s)`)
    const line = await completionLine(gateway, 'slow-body')
    t.equal(line.http_status, 408)
    t.equal(line.error_type, 'REQUEST_TIMEOUT')
    t.equal(line.client_aborted, false)
  })
})
