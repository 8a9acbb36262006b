// Real nginx running the shipped nginx.conf on loopback, in front of the built gateway, upstream-ai (mock, 200 ms between deltas) and a stub api: routing, headers, gzip, streaming, limits, /metrics, 429 and the access log.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { waitFor } from '../../common/testkit/ports.js'
import { call, timedStream } from './helpers/http.js'
import { generateBody, startStack } from './helpers/stack.js'

const run = promisify(execFile)
const SECURITY_HEADERS = ['x-frame-options', 'x-content-type-options', 'referrer-policy', 'content-security-policy', 'permissions-policy']
const NGINX_REQUEST_ID = /^[0-9a-f]{32}$/

const stack = await startStack(t, {
  // Two requests a minute per user: the third of one user is refused (429) by the gateway.
  gatewayEnv: { AI_ENGINE_RATE_LIMIT_PER_MIN: '2' },
  // A chat stream of the mock then spans seconds: 200 ms before the answer and between deltas.
  upstreamEnv: { MOCK_PROVIDER_LATENCY_MS: '200' }
})
const web = stack.nginx.url
let users = 0
/** A fresh user per request, so the rate limit of 2 only bites where a test wants it to. */
const freshAuth = async (): Promise<Record<string, string>> => ({ authorization: `Bearer ${await stack.token(`deploy-user-${++users}`)}` })
const json = { 'content-type': 'application/json' }

const hasSecurityHeaders = (t: Test, headers: Record<string, unknown>, what: string): void => {
  for (const name of SECURITY_HEADERS) t.type(headers[name], 'string', `${what}: ${name}`)
  t.equal(headers['x-frame-options'], 'DENY', `${what}: X-Frame-Options DENY`)
  t.equal(headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  t.match(headers['content-security-policy'], /default-src 'self'.*frame-ancestors 'none'/, `${what}: a CSP`)
  t.equal(headers.server, 'nginx', `${what}: server_tokens off (no version)`)
  t.type(headers['x-request-id'], 'string', `${what}: one X-Request-Id`)
}

t.test('/ serves the placeholder frontend, with the SPA fallback to index.html', async (t) => {
  const home = await call(web, '/')
  t.equal(home.status, 200)
  t.match(home.headers['content-type'], /^text\/html/)
  t.match(home.text, /The stack is up/)
  hasSecurityHeaders(t, home.headers, '/')
  const deepLink = await call(web, '/account/settings?tab=ai')
  t.equal(deepLink.status, 200, 'an app route the server does not know gets index.html')
  t.match(deepLink.text, /The stack is up/)
  t.equal(deepLink.headers['cache-control'], 'no-cache', 'index.html is revalidated')
  t.equal((await call(web, '/assets/app-0123abcd.js')).status, 404, 'a missing hashed asset is a 404, not index.html')
  t.equal((await call(web, '/.env')).status, 404, 'hidden files are never served')
  t.equal((await call(web, '/.git/config')).status, 404)
})

t.test('/health, /health/live and /health/ready are the gateway\'s', async (t) => {
  for (const path of ['/health', '/health/ready']) {
    const health = await call(web, path)
    t.equal(health.status, 200, `${path} is 200`)
    t.equal(health.json().status, 'healthy', `${path}: the gateway's report`)
    hasSecurityHeaders(t, health.headers, path)
  }
  const live = await call(web, '/health/live')
  t.equal(live.status, 200)
  t.same(live.json(), { status: 'alive' })
  t.equal(stack.api.requests.filter((request) => request.url.startsWith('/health')).length, 0, 'the api never sees /health')
})

t.test('/v1/ai/* goes to the gateway; /v1/* and /api/* to the app\'s api, path and query kept', async (t) => {
  const generate = await call(web, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...await freshAuth() }, body: generateBody(200) })
  t.equal(generate.status, 200, 'the gateway answered through upstream-ai')
  t.type(generate.json().text, 'string')
  hasSecurityHeaders(t, generate.headers, 'generate')
  const anonymous = await call(web, '/v1/ai/generate', { method: 'POST', headers: json, body: generateBody(200) })
  t.equal(anonymous.status, 401, 'the gateway, not nginx, checks the token')
  t.equal(anonymous.json().error.type, 'UNAUTHORIZED')
  t.equal((await call(web, '/v1/ai/nope')).json().error.type, 'NOT_FOUND', 'unknown /v1/ai/ paths are the gateway\'s 404')

  for (const path of ['/v1/users/me?fields=name', '/api/orders/42']) {
    const before = stack.api.requests.length
    const answer = await call(web, path)
    t.equal(answer.status, 200, `${path} answered`)
    t.equal(answer.json().service, 'stub-api', `${path} reached the api`)
    t.equal(stack.api.requests[before]?.url, path, `${path}: the api got the path as sent`)
    t.notOk(answer.headers['x-powered-by'], 'the api\'s X-Powered-By is dropped')
    hasSecurityHeaders(t, answer.headers, path)
  }
  t.notOk(stack.api.requests.some((request) => request.url.startsWith('/v1/ai/')), 'the api never sees /v1/ai/*')
})

t.test('X-Request-Id: kept when sane, generated otherwise, sent to the backend and returned once', async (t) => {
  const kept = await call(web, '/api/ping', { headers: { 'x-request-id': 'client-req.42:a_b-c' } })
  t.equal(kept.headers['x-request-id'], 'client-req.42:a_b-c')
  t.equal(stack.api.requests.at(-1)?.headers['x-request-id'], 'client-req.42:a_b-c', 'the api got it')

  const replaced = await call(web, '/api/ping', { headers: { 'x-request-id': 'has spaces and "quotes"' } })
  t.match(replaced.headers['x-request-id'], NGINX_REQUEST_ID, 'an insane id is replaced by nginx\'s own')
  t.equal(stack.api.requests.at(-1)?.headers['x-request-id'], replaced.headers['x-request-id'])

  const generated = await call(web, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...await freshAuth() }, body: generateBody(200) })
  const id = generated.headers['x-request-id']
  t.match(id, NGINX_REQUEST_ID, 'generated when absent')
  t.notOk(Array.isArray(id), 'exactly one X-Request-Id, though the gateway sets one too')
  // Each service writes its completion line once the answer is out: wait for it.
  await waitFor(() => stack.gateway.logs().some((line) => line.request_id === id) || undefined, { what: 'the gateway\'s line with nginx\'s id' })
  await waitFor(() => stack.upstream.logs().some((line) => line.request_id === id) || undefined, { what: 'upstream-ai\'s line with nginx\'s id' })
  t.pass('the gateway and upstream-ai logged the request under nginx\'s id')
})

t.test('the real client address: X-Forwarded-* believed from the TLS proxy only', async (t) => {
  // In this test the trusted proxy address (Caddy's in compose) is 127.0.0.1; 127.0.0.9 is any other client.
  await call(web, '/api/whoami', { localAddress: '127.0.0.9', headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' } })
  let seen = stack.api.requests.at(-1)!.headers
  t.equal(seen['x-real-ip'], '127.0.0.9', 'a client cannot claim another address')
  t.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.9', 'its claim is passed on, followed by its real address')
  t.equal(seen['x-forwarded-proto'], 'http', 'nor claim HTTPS')

  await call(web, '/api/whoami', { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' } })
  seen = stack.api.requests.at(-1)!.headers
  t.equal(seen['x-real-ip'], '203.0.113.7', 'the TLS proxy names the client')
  t.equal(seen['x-forwarded-proto'], 'https', 'and says it came over HTTPS')
})

t.test('gzip for JSON, never for a server-sent event stream', async (t) => {
  const apiJson = await call(web, '/api/big', { headers: { 'accept-encoding': 'gzip' } })
  t.equal(apiJson.headers['content-encoding'], 'gzip', 'the api\'s JSON is compressed')
  t.ok(apiJson.body.length < 1024 && apiJson.text.length > 4096, 'and decompresses to the whole answer')
  t.equal(apiJson.headers.vary, 'Accept-Encoding')

  const generate = await call(web, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...await freshAuth(), 'accept-encoding': 'gzip' }, body: generateBody(200) })
  t.equal(generate.status, 200)
  t.equal(generate.headers['content-encoding'], 'gzip', 'the gateway\'s JSON is compressed')
  t.type(generate.json().text, 'string')

  t.equal((await call(web, '/api/big')).headers['content-encoding'], undefined, 'not for a client that did not ask')
})

t.test('a chat stream is not buffered: its first event arrives long before its last', async (t) => {
  const stream = await timedStream(web, '/v1/ai/chat', {
    headers: { ...json, ...await freshAuth(), 'accept-encoding': 'gzip' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'What does a full moon in Leo mean for the week ahead?' }] })
  })
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)
  t.equal(stream.headers['content-encoding'], undefined, 'never gzip on text/event-stream')
  hasSecurityHeaders(t, stream.headers, 'chat')
  const first = stream.events[0]
  const last = stream.events.at(-1)
  t.equal(last?.event, 'done', `the stream ended with done (${stream.events.length} events)`)
  t.ok(stream.events.length >= 4, 'several events')
  t.ok(first !== undefined && last !== undefined && last.at - first.at > 1000,
    `the first event reached the client ${Math.round((last?.at ?? 0) - (first?.at ?? 0))} ms before the last (> 1000 ms)`)
  t.ok(stream.chunks.length >= 4, `in ${stream.chunks.length} separate reads, not one buffered block`)
})

t.test('a body over the gateway\'s limit is refused by nginx, in the gateway\'s envelope', async (t) => {
  const limit = 1_048_576
  const atLimit = await call(web, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...await freshAuth() }, body: generateBody(limit) })
  t.equal(atLimit.status, 200, 'exactly AI_GATEWAY_MAX_BODY_BYTES passes nginx and the gateway')

  const over = await call(web, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...await freshAuth() }, body: generateBody(limit + 1) })
  t.equal(over.status, 413, 'one byte more is refused')
  t.match(over.headers['content-type'], /^application\/json/)
  t.equal(over.json().error.type, 'PAYLOAD_TOO_LARGE')
  t.equal(over.json().meta.request_id, over.headers['x-request-id'], 'with the request id')
  hasSecurityHeaders(t, over.headers, '413')
  const logged = await waitFor(() => stack.nginx.accessLog().find((line) => line.request_id === over.headers['x-request-id']), { what: 'the 413 in the access log' })
  t.equal(logged.upstream_addr, '', 'the gateway never saw it')
})

t.test('/metrics is not reachable through nginx, however the path is spelled', async (t) => {
  const direct = await call(stack.gateway.url, '/metrics')
  t.equal(direct.status, 200, 'the gateway serves /metrics (to Prometheus, on the internal network)')
  t.match(direct.text, /# HELP /, 'as Prometheus text')

  const gatewayAddress = `127.0.0.1:${stack.gateway.port}`
  const paths = ['/metrics', '/metrics/', '/metrics?x=1', '//metrics', '/v1/ai/../../metrics', '/health/..%2Fmetrics', '/v1/ai/%2e%2e/%2e%2e/metrics', '/v1/ai/../metrics']
  for (const [index, path] of paths.entries()) {
    const id = `metrics-probe-${index}`
    const answer = await call(web, path, { headers: { 'x-request-id': id } })
    t.notMatch(answer.text, /# (HELP|TYPE)/, `${path}: no Prometheus text (${answer.status})`)
    const logged = await waitFor(() => stack.nginx.accessLog().find((line) => line.request_id === id), { what: `the access log line of ${path}` })
    t.not(logged.upstream_addr, gatewayAddress, `${path}: never sent to the gateway`)
  }
  // nginx resolves dot segments before choosing a location: these are /metrics (404), except the last,
  // which is /v1/metrics, the app's api's business.
  t.equal((await call(web, '/metrics')).status, 404)
  t.equal((await call(web, '/health/..%2Fmetrics')).status, 404)
})

t.test('a 429 from the gateway passes through nginx with its headers', async (t) => {
  const auth = await freshAuth()
  const send = async () => await call(web, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...auth }, body: generateBody(200) })
  t.equal((await send()).status, 200)
  t.equal((await send()).status, 200)
  const refused = await send()
  t.equal(refused.status, 429, 'the third request of the minute is refused')
  t.equal(refused.json().error?.type, 'RATE_LIMIT_EXCEEDED')
  t.match(refused.headers['retry-after'], /^\d+$/, 'Retry-After')
  t.equal(refused.headers['x-ratelimit-limit'], '2', 'X-RateLimit-Limit')
  t.equal(refused.headers['x-ratelimit-remaining'], '0', 'X-RateLimit-Remaining')
  t.match(refused.headers['x-ratelimit-reset'], /^\d+$/, 'X-RateLimit-Reset')
  t.match(refused.headers.ratelimit, /^"default";r=0;t=\d+$/, 'RateLimit')
  hasSecurityHeaders(t, refused.headers, '429')
})

t.test('web\'s compose healthcheck: nginx\'s own status, from inside only', async (t) => {
  // compose: wget -q -O /dev/null http://127.0.0.1/web-health (here on the test's port).
  await t.resolves(run('wget', ['-q', '-O', '/dev/null', `${web}/web-health`]), 'the healthcheck command succeeds')
  const local = await call(web, '/web-health')
  t.equal(local.status, 200)
  t.match(local.text, /Active connections/)
  const outside = await call(web, '/web-health', { localAddress: '127.0.0.9', headers: { 'x-forwarded-for': '127.0.0.1' } })
  t.equal(outside.status, 403, 'refused to anyone else, whatever X-Forwarded-For says')
})

t.test('the access log is one JSON object per request, without credentials', async (t) => {
  const auth = await freshAuth()
  await call(web, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...auth, 'x-request-id': 'access-log-check-1' }, body: generateBody(200) })
  // nginx writes the line when the request is done, a moment after the client has the answer.
  const fromFile = await waitFor(() => stack.nginx.accessLog().find((line) => line.request_id === 'access-log-check-1'), { what: 'the access log line' })
  t.match(fromFile, {
    method: 'POST', uri: '/v1/ai/generate', status: 200, remote_addr: '127.0.0.1',
    upstream_addr: `127.0.0.1:${stack.gateway.port}`, upstream_status: '200'
  }, 'the volume\'s access.json has the request')
  t.type(fromFile.request_time, 'number')
  t.ok(stack.nginx.stdoutLog().some((line) => line.request_id === 'access-log-check-1'), 'and so has the log the image sends to stdout')
  const token = auth.authorization!.slice('Bearer '.length)
  t.notOk(JSON.stringify([...stack.nginx.accessLog(), ...stack.nginx.stdoutLog()]).includes(token), 'the token is never logged')
})
