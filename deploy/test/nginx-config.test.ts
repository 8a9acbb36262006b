// The shipped nginx/nginx.conf passes `nginx -t` (Debian's nginx) with only the documented loopback substitutions, runs without root, and agrees with the gateway's own limits.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { SETTINGS } from '../../gateway/src/config.js'
import { call } from './helpers/http.js'
import { deriveNginxConf, nginxConfigTest, nginxSubstitutions, SHIPPED_NGINX_CONF, startNginx } from './helpers/nginx.js'

const shipped = readFileSync(SHIPPED_NGINX_CONF, 'utf8')
/** The directive lines, comments dropped. */
const directives = shipped.split('\n').filter((line) => !line.trimStart().startsWith('#')).join('\n')
const targets = { gateway: '127.0.0.1:9', api: '127.0.0.1:9' }
const NOBODY = { uid: 65534, gid: 65534 }

/** Seconds in an nginx time value such as `60s`, `1h` or `1m`. */
function seconds (value: string): number {
  const match = /^(\d+)(ms|s|m|h)?$/.exec(value)
  if (match === null) throw new Error(`not an nginx time: ${value}`)
  const factor = { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2] as 'ms' | 's' | 'm' | 'h' ?? 's']
  return Number(match[1]) * factor
}

/** The value of the first `name value;` directive in `text`. */
function directive (text: string, name: string): string {
  const match = new RegExp(`^\\s*${name}\\s+([^;]+);`, 'm').exec(text)
  if (match === null) throw new Error(`no ${name} directive`)
  return match[1]!.trim()
}

t.test('nginx -t accepts the shipped file, backends and paths moved to loopback and a temp folder', async (t) => {
  const { code, output } = await nginxConfigTest(t, targets)
  t.equal(code, 0, output)
  t.match(output, /syntax is ok/)
  t.match(output, /test is successful/)
})

t.test('the test copy differs from the shipped file only by the substitution table', async (t) => {
  const substitutions = nginxSubstitutions('/tmp/x', 12345, targets)
  const derived = deriveNginxConf(shipped, substitutions).split('\n')
  const original = shipped.split('\n')
  t.equal(derived.length, original.length, 'same lines')
  const changed = original.flatMap((line, index) => line === derived[index] ? [] : [{ line, now: derived[index]! }])
  for (const { line, now } of changed) {
    t.ok(substitutions.some(({ from, to }) => line.includes(from) && now === line.split(from).join(to)), `only substituted: ${line.trim()}`)
  }
  t.throws(() => deriveNginxConf(shipped.replace(/^(\s+)server gateway:8080;/m, '$1server gateway:9090;'), substitutions),
    /expected "server gateway:8080;" 1 time/, 'a shipped file the table no longer fits is refused, not run')
})

t.test('it runs as an unprivileged user: `user` is ignored, nothing needs root', { skip: process.getuid?.() !== 0 && 'needs root to switch to nobody' }, async (t) => {
  const tested = await nginxConfigTest(t, { ...targets, runAs: NOBODY })
  t.equal(tested.code, 0, tested.output)
  t.match(tested.output, /the "user" directive makes sense only if the master process runs with super-user privileges, ignored/)
  const nginx = await startNginx(t, { ...targets, runAs: NOBODY })
  const status = readFileSync(`/proc/${nginx.process.child.pid}/status`, 'utf8')
  t.match(status, /^Uid:\s+65534\s/m, 'the master runs as nobody')
  const home = await call(nginx.url, '/')
  t.equal(home.status, 200, 'and serves')
  t.match(home.text, /The stack is up/)
})

t.test('the shipped file: hardening and the gateway\'s limits', async (t) => {
  t.equal(directive(directives, 'server_tokens'), 'off')
  t.equal(directive(directives, 'gzip'), 'on')
  const gzipTypes = directive(directives, 'gzip_types')
  t.match(gzipTypes, /application\/json/, 'gzip for JSON')
  t.notMatch(gzipTypes, /event-stream/, 'never for server-sent events')
  t.match(directives, /log_format json escape=json/, 'a JSON access log format')

  // client_max_body_size 1m is the gateway's default body limit.
  const bodyLimit = directive(directives, 'client_max_body_size')
  t.equal(bodyLimit, '1m')
  t.equal(SETTINGS.maxBodyBytes.default, 1024 * 1024, 'AI_GATEWAY_MAX_BODY_BYTES defaults to 1m too')

  const gatewayUpstream = /upstream gateway \{([^}]*)\}/.exec(directives)?.[1] ?? ''
  t.ok(seconds(directive(gatewayUpstream, 'keepalive_timeout')) < SETTINGS.keepAliveTimeoutSeconds.default,
    'nginx drops idle upstream connections before the gateway does (AI_GATEWAY_KEEP_ALIVE_TIMEOUT_SECONDS)')
  t.ok(seconds(directive(directives, 'proxy_read_timeout')) > SETTINGS.engineTimeoutSeconds.default,
    'nginx waits longer than AI_ENGINE_TIMEOUT_SECONDS, so the gateway\'s 504 envelope reaches the client')
  t.equal(seconds(directive(directives, 'client_header_timeout')), SETTINGS.headersTimeoutSeconds.default, 'AI_GATEWAY_HEADERS_TIMEOUT_SECONDS')

  const chat = /location = \/v1\/ai\/chat \{([^}]*)\}/.exec(directives)?.[1] ?? ''
  t.equal(directive(chat, 'proxy_buffering'), 'off', 'chat: proxy_buffering off')
  t.equal(directive(directives, 'proxy_http_version'), '1.1', 'HTTP/1.1 to the backends (keep-alive, streaming)')
  t.ok(seconds(directive(chat, 'proxy_read_timeout')) >= 600, 'chat: a long proxy_read_timeout')
  t.ok(seconds(directive(chat, 'proxy_read_timeout')) > SETTINGS.streamIdleTimeoutSeconds.default, 'longer than the gateway\'s stream idle timeout')
  t.ok(seconds(directive(directives, 'proxy_read_timeout')) > SETTINGS.ssePingSeconds.default, 'the gateway\'s SSE pings (AI_GATEWAY_SSE_PING_SECONDS) come well within every read timeout')

  // A location with its own add_header / proxy_set_header / proxy_hide_header would silently drop the server's.
  const locations = [...directives.matchAll(/location [^{]+\{([^}]*)\}/g)].map((match) => match[1]!)
  t.ok(locations.length >= 10, `${locations.length} locations`)
  for (const body of locations) t.notMatch(body, /\b(add_header|proxy_set_header|proxy_hide_header)\b/, 'no location overrides the server\'s headers')
  t.match(directives, /location \^~ \/metrics \{\s*return 404;/, '/metrics is refused before any other location')
})
