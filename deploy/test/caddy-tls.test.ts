// HTTPS end to end: Debian's caddy runs the shipped compose/Caddyfile (tls internal, on loopback) in front of the shipped nginx.conf, the gateway, upstream-ai and a stub api; curl trusts only Caddy's local CA.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { call, timedStream } from './helpers/http.js'
import { deriveCaddyfile, SHIPPED_CADDYFILE, startCaddy } from './helpers/caddy.js'
import { generateBody, startStack } from './helpers/stack.js'

const run = promisify(execFile)

const stack = await startStack(t, { upstreamEnv: { MOCK_PROVIDER_LATENCY_MS: '200' } })
const caddy = await startCaddy(t, `127.0.0.1:${stack.nginx.port}`)
const json = { 'content-type': 'application/json' }

interface CurlReply { status: number; headers: Record<string, string>; body: string }

/** curl as an operator runs it: the host name resolved to loopback, the CA given explicitly. */
async function curl (path: string, extra: string[] = []): Promise<CurlReply> {
  const { stdout } = await run('curl', [
    '-sS', '--max-time', '15', '--cacert', caddy.rootCertPath,
    '--resolve', `localhost:${caddy.httpsPort}:127.0.0.1`, '-D', '-', ...extra, `${caddy.url}${path}`
  ])
  const split = stdout.indexOf('\r\n\r\n')
  const [statusLine, ...headerLines] = stdout.slice(0, split).split('\r\n')
  const headers = Object.fromEntries(headerLines.map((line) => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
  }))
  return { status: Number(statusLine!.split(' ')[1]), headers, body: stdout.slice(split + 4) }
}

t.test('curl --cacert with Caddy\'s local CA gets the gateway\'s health over HTTPS', async (t) => {
  const health = await curl('/health')
  t.equal(health.status, 200)
  t.equal(JSON.parse(health.body).status, 'healthy', 'the gateway answered, through Caddy and nginx')
  t.match(health.headers['strict-transport-security'], /^max-age=\d+/, 'HSTS from Caddy')
  t.equal(health.headers['x-frame-options'], 'DENY', 'nginx\'s security headers come through')
  t.type(health.headers['content-security-policy'], 'string')
  t.notOk(health.headers.server, 'no Server header at all')
  t.match(health.headers['x-request-id'], /^[0-9a-f]{32}$/, 'nginx\'s request id')

  const page = await curl('/')
  t.equal(page.status, 200)
  t.match(page.body, /The stack is up/, 'the frontend over HTTPS')
})

t.test('the certificate is Caddy\'s own: without its CA, curl refuses it', async (t) => {
  await t.rejects(run('curl', ['-sS', '--max-time', '10', '--resolve', `localhost:${caddy.httpsPort}:127.0.0.1`, `${caddy.url}/health`]),
    /certificate/i, 'not trusted by the system store')
  const { stdout } = await run('openssl', ['x509', '-in', caddy.rootCertPath, '-noout', '-subject'])
  t.match(stdout, /Caddy Local Authority/, 'the root is Caddy\'s local authority')
})

t.test('plain HTTP is redirected to HTTPS', async (t) => {
  const { stdout } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', `http://127.0.0.1:${caddy.httpPort}/v1/ai/generate`, '-H', 'Host: localhost'])
  t.match(stdout, /^30[18] https:\/\/localhost\/v1\/ai\/generate$|^30[18] https:\/\/localhost:\d+\/v1\/ai\/generate$/, stdout)
})

t.test('the api learns the real client address and that it came over HTTPS', async (t) => {
  // curl leaves from 127.0.0.7; Caddy (from 127.0.0.1, the address nginx trusts here) names it.
  const answer = await curl('/api/whoami', ['--interface', '127.0.0.7', '-H', 'X-Forwarded-For: 203.0.113.66'])
  t.equal(answer.status, 200)
  const seen = stack.api.requests.at(-1)!.headers
  t.equal(seen['x-real-ip'], '127.0.0.7', 'the client\'s own address, not the one it claimed')
  t.equal(seen['x-forwarded-proto'], 'https')
  t.notMatch(String(seen['x-forwarded-for']), /203\.0\.113\.66/, 'Caddy dropped the client\'s X-Forwarded-For')
})

t.test('generate and a chat stream over HTTPS: the stream is not held back by Caddy nor nginx', async (t) => {
  const auth = { authorization: `Bearer ${await stack.token('tls-user')}` }
  const generate = await call(caddy.url, '/v1/ai/generate', { method: 'POST', headers: { ...json, ...auth }, body: generateBody(200), ca: caddy.rootCert, connectTo: '127.0.0.1' })
  t.equal(generate.status, 200)
  t.type(generate.json().text, 'string')

  const stream = await timedStream(caddy.url, '/v1/ai/chat', {
    headers: { ...json, ...auth, 'accept-encoding': 'gzip' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Is this a good week to start something new?' }] }),
    ca: caddy.rootCert,
    connectTo: '127.0.0.1'
  })
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)
  t.equal(stream.headers['content-encoding'], undefined, 'not compressed')
  const first = stream.events[0]
  const last = stream.events.at(-1)
  t.equal(last?.event, 'done')
  t.ok(first !== undefined && last !== undefined && last.at - first.at > 1000,
    `the first event arrived ${Math.round((last?.at ?? 0) - (first?.at ?? 0))} ms before the last (> 1000 ms)`)
})

t.test('the caddy service\'s compose healthcheck command succeeds against this Caddy', async (t) => {
  // compose: wget -q -O /dev/null http://127.0.0.1:2019/config/ (the admin endpoint, here on the test's port).
  await t.resolves(run('wget', ['-q', '-O', '/dev/null', `http://127.0.0.1:${caddy.adminPort}/config/`]))
})

t.test('the test Caddyfile is the shipped one plus the four loopback options', async (t) => {
  const shipped = readFileSync(SHIPPED_CADDYFILE, 'utf8')
  const derived = deriveCaddyfile(shipped, { httpPort: 1, httpsPort: 2, adminPort: 3 })
  const added = derived.split('\n').filter((line) => !shipped.split('\n').includes(line))
  t.same(added.map((line) => line.trim()), ['default_bind 127.0.0.1', 'http_port 1', 'https_port 2', 'admin localhost:3'])
  t.equal(derived.split('\n').length, shipped.split('\n').length + 4, 'nothing removed')
})
