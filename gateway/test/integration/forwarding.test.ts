// Forwarding: what upstream-ai receives (verified X-User-Id and X-Forwarded-* replacing forged ones, no hop-by-hop or credential headers, the body bytes unchanged, request id and traceparent) and what the client gets back, over one pooled keep-alive connection.
import t from 'tap'
import { startUpstream, echo, answerJson } from '../helpers/upstream.js'
import { bearer, call, rawCall, startGateway, token } from '../helpers/gateway.js'

t.test('forwarding', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const authorization = `Bearer ${await token({ sub: 'alice' })}`

  t.test('client-forged identity and forwarding headers never reach upstream-ai', async (t) => {
    const reply = await rawCall(gateway.url, '/v1/ai/generate', [
      ['Authorization', authorization],
      ['X-User-Id', 'mallory'],
      ['x-user-id', 'eve'],
      ['X-USER-ID', 'trudy'],
      ['X-Forwarded-For', '203.0.113.7'],
      ['x-forwarded-for', '198.51.100.1'],
      ['X-Forwarded-Host', 'evil.example'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-Port', '443'],
      ['Forwarded', 'for=203.0.113.7;proto=https'],
      ['X-Real-IP', '203.0.113.7'],
      ['Cookie', 'session=s3cr3t'],
      ['Proxy-Authorization', 'Basic Zm9vOmJhcg=='],
      ['Connection', 'X-Hop-Secret'],
      ['X-Hop-Secret', 'named by Connection'],
      ['Keep-Alive', 'timeout=5'],
      ['Proxy-Connection', 'keep-alive'],
      ['TE', 'trailers'],
      ['Upgrade', 'websocket'],
      ['Trailer', 'X-Late'],
      ['X-Custom', 'kept'],
      ['Accept', 'application/json'],
      ['X-Forwarded-Host', 'second.evil.example'],
      ['Content-Type', 'application/json']
    ], JSON.stringify({ use_case: 'horoscope_daily', input: {} }))
    t.equal(reply.status, 200)
    const received = await upstream.request(upstream.requests.length)
    const names = (name: string): string[] => received.rawHeaders.filter((_, i) => i % 2 === 0 && received.rawHeaders[i]!.toLowerCase() === name)
    t.equal(received.headers['x-user-id'], 'alice', 'the verified user, once')
    t.equal(names('x-user-id').length, 1)
    t.equal(received.headers['x-forwarded-for'], '127.0.0.1', 'the connection\'s address, not the client\'s claim')
    t.equal(names('x-forwarded-for').length, 1)
    t.equal(received.headers['x-forwarded-proto'], 'http')
    t.equal(received.headers['x-forwarded-host'], new URL(gateway.url).host, 'the Host the client used')
    t.equal(received.headers['x-forwarded-port'], undefined)
    t.equal(received.headers.forwarded, undefined)
    t.equal(received.headers['x-real-ip'], undefined)
    t.equal(received.headers.authorization, undefined)
    t.equal(received.headers.cookie, undefined)
    t.equal(received.headers['proxy-authorization'], undefined)
    t.equal(received.headers['x-hop-secret'], undefined, 'a header named by Connection is hop-by-hop')
    t.equal(received.headers['keep-alive'], undefined)
    t.equal(received.headers['proxy-connection'], undefined)
    t.equal(received.headers.te, undefined)
    t.equal(received.headers.upgrade, undefined)
    t.equal(received.headers.trailer, undefined)
    t.equal(received.headers['x-custom'], 'kept', 'end-to-end headers pass')
    t.equal(received.headers.accept, 'application/json')
    t.equal(received.headers.host, `127.0.0.1:${upstream.port}`, 'Host names upstream-ai')
  })

  t.test('underscore spellings, duplicates and Connection-named copies of identity and internal headers never reach upstream-ai', async (t) => {
    const reply = await rawCall(gateway.url, '/v1/ai/generate', [
      ['Authorization', authorization],
      // What CGI-style servers and some proxies read as X-User-Id / X-Forwarded-For / X-Request-Id.
      ['X_User_Id', 'mallory'],
      ['x_user_id', 'eve'],
      ['X-User_Id', 'trudy'],
      ['X-User-Id', 'oscar'],
      ['X-User-Id', 'oscar-again'],
      ['X_Forwarded_For', '203.0.113.7'],
      ['X-Forwarded_Host', 'evil.example'],
      ['X_Real_IP', '203.0.113.7'],
      ['X_Request_Id', 'forged-id'],
      ['Proxy_Authorization', 'Basic Zm9vOmJhcg=='],
      // The request id named hop-by-hop: still the gateway's own to use, and set by the gateway upstream.
      ['X-Request-Id', 'client-chosen-1'],
      ['Connection', 'close, X-Request-Id, Upgrade, HTTP2-Settings'],
      ['Upgrade', 'h2c'],
      ['HTTP2-Settings', 'AAMAAABkAAQAAP__'],
      ['TE', 'trailers, deflate'],
      ['Trailer', 'X-User-Id'],
      ['Content-Type', 'application/json']
    ], JSON.stringify({ use_case: 'horoscope_daily', input: {} }))
    t.equal(reply.status, 200)
    const received = await upstream.request(upstream.requests.length)
    const names = received.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase().replaceAll('_', '-'))
    t.equal(received.headers['x-user-id'], 'alice', 'identity comes from the token, whatever the client sent')
    t.equal(names.filter((name) => name === 'x-user-id').length, 1, 'one X-User-Id in any spelling')
    t.equal(names.filter((name) => name === 'x-forwarded-for').length, 1, 'one X-Forwarded-For in any spelling: the gateway\'s')
    t.equal(received.headers['x-forwarded-for'], '127.0.0.1')
    t.equal(names.filter((name) => name === 'x-forwarded-host').length, 1)
    t.notOk(names.includes('x-real-ip'))
    t.notOk(names.includes('proxy-authorization'))
    t.equal(names.filter((name) => name === 'x-request-id').length, 1)
    t.equal(received.headers['x-request-id'], 'client-chosen-1', 'the request id the gateway used, the same the client got')
    t.equal(reply.headers.find(([name]) => name === 'x-request-id')?.[1], 'client-chosen-1')
    for (const hop of ['upgrade', 'http2-settings', 'te', 'trailer']) t.notOk(names.includes(hop), `${hop} stays at the gateway`)
    t.equal(received.headers.connection, 'keep-alive', 'Connection is the gateway\'s own, for its pooled connection')
    t.notOk(received.rawHeaders.some((value) => /mallory|eve|trudy|oscar|forged-id|evil\.example|203\.0\.113\.7/.test(value)), 'none of the forged values travelled under any name')
  })

  t.test('the body bytes are forwarded unchanged, with their length', async (t) => {
    const raw = '{ "use_case" : "horoscope_daily",\n  "input": {"sign":"léo", "n": 1.50}\t}'
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization, 'content-type': 'application/json; charset=utf-8' }, body: raw })
    t.equal(reply.status, 200)
    const received = upstream.requests.at(-1)!
    t.equal(received.body.toString('utf8'), raw, 'not re-serialised')
    t.equal(received.headers['content-length'], String(Buffer.byteLength(raw)))
    t.equal(received.headers['transfer-encoding'], undefined)
    t.equal(received.url, '/v1/ai/generate')
    t.equal(received.method, 'POST')
  })

  t.test('a sane X-Request-Id is kept, returned and forwarded', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/chat', { headers: { authorization, 'x-request-id': 'client-req:42.a_b-c' }, body: { messages: [], stream: false } })
    t.equal(reply.headers['x-request-id'], 'client-req:42.a_b-c')
    t.equal(upstream.requests.at(-1)!.headers['x-request-id'], 'client-req:42.a_b-c')
  })

  for (const [label, insane] of [['too long', 'a'.repeat(129)], ['bad characters', 'abc def<script>'], ['empty', '']] as const) {
    t.test(`an X-Request-Id that is ${label} is replaced`, async (t) => {
      const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization, 'x-request-id': insane }, body: { use_case: 'x' } })
      const id = reply.headers['x-request-id'] as string
      t.match(id, /^[A-Za-z0-9._:-]{1,128}$/)
      t.not(id, insane)
      t.equal(upstream.requests.at(-1)!.headers['x-request-id'], id)
    })
  }

  t.test('the request id is on error answers too, header and envelope', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { 'x-request-id': 'err-1' }, body: {} })
    t.equal(reply.status, 401)
    t.equal(reply.headers['x-request-id'], 'err-1')
    t.equal(reply.json().meta.request_id, 'err-1')
    const notFound = await call(gateway.url, '/nowhere', { headers: { 'x-request-id': 'err-2' } })
    t.equal(notFound.status, 404)
    t.equal(notFound.headers['x-request-id'], 'err-2')
  })

  t.test('a valid traceparent is continued: same trace id, the gateway\'s own span id', async (t) => {
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    await call(gateway.url, '/v1/ai/generate', { headers: { authorization, traceparent: incoming, tracestate: 'vendor=1' }, body: { use_case: 'x' } })
    const forwarded = upstream.requests.at(-1)!.headers.traceparent as string
    const [version, traceId, spanId, flags] = forwarded.split('-')
    t.equal(version, '00')
    t.equal(traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
    t.match(spanId, /^[0-9a-f]{16}$/)
    t.not(spanId, '00f067aa0ba902b7', 'a new span for the gateway hop')
    t.equal(flags, '01')
    t.equal(upstream.requests.at(-1)!.headers.tracestate, 'vendor=1', 'tracestate follows its trace')
    const refused = await call(gateway.url, '/v1/ai/generate', { headers: { traceparent: incoming }, body: {} })
    t.equal(refused.json().meta.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736', 'errors carry the trace id')
  })

  t.test('an invalid traceparent starts a new trace (and its tracestate is dropped)', async (t) => {
    await call(gateway.url, '/v1/ai/generate', { headers: { authorization, traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', tracestate: 'vendor=1' }, body: { use_case: 'x' } })
    const forwarded = upstream.requests.at(-1)!.headers.traceparent as string
    t.match(forwarded, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    t.not(forwarded.split('-')[1], '00000000000000000000000000000000')
    t.equal(upstream.requests.at(-1)!.headers.tracestate, undefined)
  })

  t.test('hop-by-hop headers of the answer stay at the gateway; the rest reach the client', async (t) => {
    upstream.behave(answerJson(200, { ok: true }, {
      connection: 'keep-alive, X-Upstream-Hop',
      'x-upstream-hop': 'hop',
      'keep-alive': 'timeout=5',
      'proxy-authenticate': 'Basic',
      'x-request-id': 'upstream-made-this-up',
      'x-upstream-visible': 'yes'
    }))
    t.teardown(() => { upstream.behave(echo()) })
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization, 'x-request-id': 'mine' }, body: { use_case: 'x' } })
    t.equal(reply.status, 200)
    t.equal(reply.headers['x-upstream-hop'], undefined)
    t.equal(reply.headers['keep-alive'], undefined)
    t.equal(reply.headers['proxy-authenticate'], undefined)
    t.equal(reply.headers['x-upstream-visible'], 'yes')
    t.equal(reply.headers['x-request-id'], 'mine', 'the gateway\'s request id wins')
    t.same(reply.json(), { ok: true })
  })

  t.test('connections to upstream-ai are pooled and kept alive', async (t) => {
    const before = upstream.requests.length
    for (let i = 0; i < 5; i++) {
      const reply = await call(gateway.url, '/v1/ai/generate', { headers: await bearer(), body: { use_case: 'x' } })
      t.equal(reply.status, 200)
    }
    const used = new Set(upstream.requests.slice(before).map((request) => request.connection))
    t.equal(used.size, 1, `5 sequential requests over one upstream connection (used ${[...used].join(', ')})`)
  })
})

t.test('trusted user header mode: the user comes from the named header, unverified', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_TRUSTED_USER_HEADER: 'X-Auth-Request-User' })
  t.ok(gateway.logs().some((line) => line.level === 'warn' && /trusted user header/.test(String(line.msg))), 'start-up warns about the mode')

  const reply = await call(gateway.url, '/v1/ai/generate', { headers: { 'x-auth-request-user': 'carol', 'x-user-id': 'mallory' }, body: { use_case: 'x' } })
  t.equal(reply.status, 200)
  const received = upstream.requests.at(-1)!
  t.equal(received.headers['x-user-id'], 'carol')
  t.equal(received.headers['x-auth-request-user'], undefined, 'the trusted header is consumed, not forwarded')

  const missing = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${await token()}` }, body: { use_case: 'x' } })
  t.equal(missing.status, 401, 'a token is no substitute for the header in this mode')
  t.match(missing.json().error.message, /missing/i)

  const twice = await rawCall(gateway.url, '/v1/ai/generate', [['X-Auth-Request-User', 'carol'], ['x-auth-request-user', 'mallory'], ['Content-Type', 'application/json']], '{"use_case":"x"}')
  t.equal(twice.status, 401, 'two values are ambiguous: refused')
  t.equal(upstream.requests.length, 1)
})
