// createLogger: one JSON object per line with ISO time, level label, msg, service and env (no pid/hostname), the level honoured, and pino's redact paths as a second belt for sensitive keys (built-in and extra) at the top level and under the usual containers, cheaply, with the time formatted once per millisecond.
import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger, isoTimeByMillisecond, redactPaths } from '../src/logger.js'
import { REDACTED } from '../src/sanitize.js'

function sink (): { lines: Array<Record<string, any>>; stream: Writable } {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, any>)
      callback()
    }
  })
  return { lines, stream }
}

t.test('the line shape collectors ingest as is', async (t) => {
  const { lines, stream } = sink()
  const logger = createLogger({ service: 'ai-gateway', environment: 'staging' }, stream)
  logger.info({ request_id: 'r1' }, 'hello')
  logger.debug('not at info')
  t.equal(lines.length, 1, 'info is the default level')
  const line = lines[0]!
  t.same(Object.keys(line), ['level', 'time', 'service', 'env', 'request_id', 'msg'])
  t.match(line, { level: 'info', service: 'ai-gateway', env: 'staging', request_id: 'r1', msg: 'hello' })
  t.ok(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(line.time), 'ISO-8601 time')
})

t.test('the level is honoured', async (t) => {
  const { lines, stream } = sink()
  const logger = createLogger({ service: 's', environment: 'test', level: 'warn' }, stream)
  logger.info('no')
  logger.warn('yes')
  t.same(lines.map((line) => line.level), ['warn'])
})

t.test('redact paths catch sensitive keys a call forgot to sanitise', async (t) => {
  const { lines, stream } = sink()
  const logger = createLogger({ service: 's', environment: 'test', redactKeys: ['partner_name', 'x-phone'] }, stream)
  logger.info({
    authorization: 'Bearer abc',
    headers: { cookie: 'c=1', authorization: 'Bearer def', 'x-api-key': 'k', 'x-request-id': 'r' },
    input: { birth_data: { date: '1990' }, prompt: 'p', email: 'a@b.c', messages: [{ role: 'user', content: 'nested question' }] },
    err: { password: 'pw', message: 'boom' },
    messages: [{ role: 'user', content: 'secret question' }],
    body: { anything: 1 },
    partner_name: 'Bob',
    context: { 'x-phone': '123', tokens_used: 5 }
  }, 'm')
  const line = lines[0]!
  t.equal(line.authorization, REDACTED)
  t.same(line.headers, { cookie: REDACTED, authorization: REDACTED, 'x-api-key': REDACTED, 'x-request-id': 'r' })
  t.same(line.input, { birth_data: REDACTED, prompt: REDACTED, email: REDACTED, messages: [{ role: 'user', content: REDACTED }] })
  t.match(line.err, { password: REDACTED, message: 'boom' })
  t.same(line.messages, [{ role: 'user', content: REDACTED }])
  t.equal(line.body, REDACTED)
  t.equal(line.partner_name, REDACTED)
  t.same(line.context, { 'x-phone': REDACTED, tokens_used: 5 }, 'tokens_used is not a token')
  t.notMatch(JSON.stringify(line), /abc|def|question|1990|a@b\.c|Bob|123"|pw/)
})

t.test('the redact paths cost little per line (no leading wildcards)', async (t) => {
  t.notOk(redactPaths(['token', 'x-key']).some((path) => path.startsWith('*')))
  const logger = createLogger({ service: 's', environment: 'test' }, new Writable({ write (_chunk, _encoding, callback) { callback() } }))
  const record = { request_id: 'r', trace_id: 't', user_id: 'u', route: '/v1/ai/generate', http_status: 200, status: 'success', latency_ms: 1, tokens_used: 3 }
  const lines = 20_000
  const started = performance.now()
  for (let i = 0; i < lines; i++) logger.info(record, 'request completed')
  const perLine = (performance.now() - started) * 1000 / lines
  t.ok(perLine < 100, `${perLine.toFixed(1)} µs per line`)
})

t.test('redactPaths brackets keys that are not identifiers', async (t) => {
  const paths = redactPaths(['token', 'x-key'])
  t.ok(paths.includes('token') && paths.includes('headers.token') && paths.includes('input.token'))
  t.ok(paths.includes('["x-key"]') && paths.includes('headers["x-key"]'))
})

t.test('the time is pino\'s isoTime, formatted once per millisecond', async (t) => {
  const time = isoTimeByMillisecond()
  const realNow = Date.now
  t.teardown(() => { Date.now = realNow })
  Date.now = () => 1_790_000_000_123
  const first = time()
  t.equal(first, `,"time":"${new Date(1_790_000_000_123).toISOString()}"`)
  t.equal(time(), first, 'the same millisecond, the same text')
  Date.now = () => 1_790_000_000_124
  t.equal(time(), ',"time":"2026-09-21T14:13:20.124Z"', 'the next millisecond, its own text')
})
