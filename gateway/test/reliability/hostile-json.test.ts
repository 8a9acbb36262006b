// Hostile JSON bodies, with the cache on: truncated, a byte order mark, invalid UTF-8, 10 000 and 500 000 levels of nesting, repeated keys (escaped too), `__proto__` keys, non-JSON literals — each a 400 (a million-element array is over the 1 MiB limit: 413), answered at once, forwarded to nobody, cached under no key; the gateway stays up and upstream-ai refuses the same bodies sent to it directly.
import t from 'tap'
import { startUpstreamAi } from '../../../upstream-ai/test/helpers/upstream.js'
import { startUpstream } from '../helpers/upstream.js'
import { answerGenerate } from '../helpers/generate.js'
import { bearer, call, startGateway } from '../helpers/gateway.js'

const deep = (depth: number): string => `{"use_case":"horoscope_daily","input":${'['.repeat(depth)}${']'.repeat(depth)}}`
const deepObjects = (depth: number): string => `{"use_case":"horoscope_daily","input":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`
const utf8WithByte = (byte: number): Buffer => Buffer.concat([Buffer.from('{"use_case":"horoscope_daily","input":{"sign":"le'), Buffer.from([byte]), Buffer.from('"}}')])

/** [label, body, expected status, expected message] */
const HOSTILE: Array<[string, string | Buffer, number, RegExp]> = [
  ['truncated', '{"use_case":"horoscope_daily","input":{"sign":"le', 400, /not valid JSON/],
  ['a byte order mark', '\uFEFF{"use_case":"horoscope_daily","input":{}}', 400, /byte order mark/],
  ['invalid UTF-8 (0xff)', utf8WithByte(0xff), 400, /UTF-8/],
  ['invalid UTF-8 (0xfe), which would decode to the same text as 0xff', utf8WithByte(0xfe), 400, /UTF-8/],
  ['an overlong UTF-8 slash', utf8WithByte(0xc0), 400, /UTF-8/],
  ['10 000 levels of arrays', deep(10_000), 400, /nested more than 64/],
  ['10 000 levels of objects', deepObjects(10_000), 400, /nested more than 64/],
  ['500 000 levels (1 MiB of brackets)', `{"a":${'['.repeat(500_000)}`, 400, /nested more than 64/],
  ['a repeated key', '{"use_case":"horoscope_daily","input":{"sign":"leo"},"input":{"sign":"virgo"}}', 400, /repeats a key/],
  ['a repeated key, escaped', '{"use_case":"horoscope_daily","input":{"sign":"leo","\\u0073ign":"virgo"}}', 400, /repeats a key/],
  ['__proto__ at the top', '{"__proto__":{"admin":true},"use_case":"horoscope_daily","input":{}}', 400, /__proto__/],
  ['__proto__ deep in an array', '{"use_case":"horoscope_daily","input":{"list":[{"__proto__":{"polluted":1}}]}}', 400, /__proto__/],
  ['__proto__ escaped', '{"use_case":"horoscope_daily","input":{"\\u005f_proto__":{}}}', 400, /__proto__/],
  ['NaN', '{"use_case":"horoscope_daily","input":{"n":NaN}}', 400, /not valid JSON/],
  ['two documents', '{"use_case":"horoscope_daily"}{"use_case":"chat"}', 400, /not valid JSON/],
  ['a trailing comma', '{"use_case":"horoscope_daily","input":{},}', 400, /not valid JSON/],
  ['single quotes', "{'use_case':'horoscope_daily'}", 400, /not valid JSON/],
  ['a million-element array', `{"use_case":"horoscope_daily","input":{"n":[${'0,'.repeat(999_999)}0]}}`, 413, /larger than 1048576/]
]

t.test('hostile JSON', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_RATE_LIMIT_ENABLED: 'false' })
  const auth = await bearer()
  const json = { ...auth, 'content-type': 'application/json' }

  for (const [label, body, status, message] of HOSTILE) {
    t.test(label, async (t) => {
      const started = performance.now()
      const reply = await call(gateway.url, '/v1/ai/generate', { headers: json, body })
      const elapsed = performance.now() - started
      t.equal(reply.status, status)
      t.equal(reply.json().error.type, status === 413 ? 'PAYLOAD_TOO_LARGE' : 'INVALID_REQUEST')
      t.match(reply.json().error.message, message)
      t.equal(reply.headers['x-cache'], undefined, 'refused before the cache: no key was ever computed')
      t.ok(elapsed < 500, `answered in ${elapsed.toFixed(0)} ms`)
    })
  }

  t.test('nothing reached upstream-ai; the gateway logged no internal error and still serves', async (t) => {
    t.equal(upstream.requests.length, 0)
    t.notOk(gateway.logs().some((line) => line.level === 'error' || line.level === 'fatal'), 'no error line')
    t.equal(gateway.child.exitCode, null, 'still running')
    t.notOk(Object.prototype.hasOwnProperty.call({}, 'admin'), 'and nothing in this process was polluted either')
    const good = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: { use_case: 'horoscope_daily', input: { sign: 'leo' } } })
    t.equal(good.status, 200)
    t.equal(good.headers['x-cache'], 'MISS')
  })

  t.test('what JSON.parse accepts and the guard allows is served and keyed without trouble', async (t) => {
    // 64 levels in all: the body object, `input`, then 62 arrays.
    const atLimit = `{"use_case":"horoscope_daily","input":{"n":${'['.repeat(62)}${']'.repeat(62)}}}`
    const big = `{"use_case":"horoscope_daily","input":{"n":[${'0,'.repeat(400_000)}0]}}`
    for (const [label, body] of [['64 levels', atLimit], ['a 400 001-element array (800 KB)', big]] as const) {
      const first = await call(gateway.url, '/v1/ai/generate', { headers: json, body })
      t.equal(first.status, 200, `${label}: 200`)
      t.equal(first.headers['x-cache'], 'MISS')
      const second = await call(gateway.url, '/v1/ai/generate', { headers: json, body })
      t.equal(second.headers['x-cache'], 'HIT', `${label}: keyed and stored like any request`)
    }
    const a = await call(gateway.url, '/v1/ai/generate', { headers: json, body: '{"use_case":"horoscope_daily","input":{"sign":"leo","Sign":"virgo"}}' })
    const b = await call(gateway.url, '/v1/ai/generate', { headers: json, body: '{"use_case":"horoscope_daily","input":{"Sign":"virgo","sign":"leo"}}' })
    t.same([a.headers['x-cache'], b.headers['x-cache']], ['MISS', 'HIT'], 'keys differing in case are two keys; their order does not matter')
  })
})

t.test('upstream-ai refuses the same bodies when they reach it directly', async (t) => {
  const upstreamAi = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '1' })
  const headers = { 'content-type': 'application/json', 'x-user-id': 'alice' }
  for (const [label, body, status, message] of HOSTILE.filter(([, , status]) => status === 400).slice(0, 13)) {
    const reply = await call(upstreamAi.url, '/v1/ai/generate', { headers, body })
    t.equal(reply.status, status, `${label}: ${status}`)
    t.match(reply.json().error.message, message)
  }
  t.equal(upstreamAi.child.exitCode, null, 'still running')
})
