// sanitizeForLogging: sensitive keys redacted at any depth, long strings cut, cycles and depth bounded, input untouched.
import t from 'tap'
import { createSanitizer, describeError, REDACTED, sanitizeForLogging } from '../src/sanitize.js'

t.test('sensitive keys are redacted at any depth, in arrays too', async (t) => {
  const input = {
    use_case: 'natal_chart_summary',
    input: { birth_data: { date: '1990-01-01', place: 'Lyon' }, name: 'Ada' },
    messages: [{ role: 'user', content: 'my secret question' }, { role: 'assistant', content: 'answer' }],
    headers: { Authorization: 'Bearer abc', 'X-Api-Key': 'k', Cookie: 'c=1', 'x-request-id': 'r1' },
    user: { email: 'a@b.c', user_email: 'x@y.z', password: 'p', access_token: 't', client_secret: 's' },
    options: { max_tokens: 100, temperature: 0 }
  }
  const clean = sanitizeForLogging(input) as typeof input
  t.equal(clean.use_case, 'natal_chart_summary')
  t.equal(clean.input.birth_data as unknown, REDACTED)
  t.equal(clean.input.name, 'Ada')
  t.equal(clean.messages[0]!.content, REDACTED)
  t.equal(clean.messages[0]!.role, 'user')
  t.equal(clean.headers.Authorization, REDACTED)
  t.equal(clean.headers['X-Api-Key'], REDACTED)
  t.equal(clean.headers.Cookie, REDACTED)
  t.equal(clean.headers['x-request-id'], 'r1')
  t.same(clean.user, { email: REDACTED, user_email: REDACTED, password: REDACTED, access_token: REDACTED, client_secret: REDACTED })
  t.same(clean.options, { max_tokens: 100, temperature: 0 }, 'max_tokens is not mistaken for a token')
  t.equal(input.messages[0]!.content, 'my secret question', 'input is not mutated')
  t.notMatch(JSON.stringify(clean), /secret question|Bearer abc|1990-01-01/)
})

t.test('extra keys are redacted', async (t) => {
  const sanitize = createSanitizer({ extraKeys: ['partner_name', 'Phone-Number'] })
  t.same(sanitize({ partner_name: 'Bob', phone_number: '123', other: 1 }), { partner_name: REDACTED, phone_number: REDACTED, other: 1 })
})

t.test('long strings are truncated', async (t) => {
  const sanitize = createSanitizer({ maxStringLength: 10 })
  t.equal(sanitize('x'.repeat(25)), 'xxxxxxxxxx…[25 chars]')
  t.equal(sanitize('short'), 'short')
})

t.test('cycles, depth and breadth are bounded', async (t) => {
  const cyclic: Record<string, unknown> = { name: 'a' }
  cyclic.self = cyclic
  cyclic.list = [cyclic]
  t.same(sanitizeForLogging(cyclic), { name: 'a', self: '[CIRCULAR]', list: ['[CIRCULAR]'] })

  const shared = { x: 1 }
  t.same(sanitizeForLogging({ a: shared, b: shared }), { a: { x: 1 }, b: { x: 1 } }, 'a value seen twice is not a cycle')

  let deep: Record<string, unknown> = { leaf: true }
  for (let i = 0; i < 10_000; i++) deep = { next: deep }
  const cut = createSanitizer({ maxDepth: 3 })(deep)
  t.same(cut, { next: { next: { next: '[DEPTH]' } } })

  const wide = createSanitizer({ maxEntries: 3 })({ list: [1, 2, 3, 4, 5], a: 1, b: 2, c: 3, d: 4 }) as Record<string, unknown>
  t.same(wide.list, [1, 2, 3, '…[2 more]'])
  t.equal(Object.keys(wide).length, 4)
})

t.test('odd values are safe', async (t) => {
  const parsed = JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') as unknown
  const clean = sanitizeForLogging(parsed) as Record<string, unknown>
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
  t.same(Object.keys(clean), ['__proto__', 'ok'])
  t.same(sanitizeForLogging({ n: 10n, f: () => 1, b: Buffer.from('abc'), e: new Error('boom') }),
    { n: '10', f: '[function]', b: '[binary 3 bytes]', e: { name: 'Error', message: 'boom', code: undefined } })
  const hostile = { get value () { throw new Error('getter') } }
  t.equal(sanitizeForLogging(hostile), '[UNSERIALIZABLE]')
})

t.test('describeError keeps the code location, sanitises the rest', async (t) => {
  const error = Object.assign(new Error(`bad input ${'x'.repeat(300)}`), { code: 'E_TEST' })
  const described = describeError(error) as { name: string; message: string; code: string; frames: string[] }
  t.equal(described.name, 'Error')
  t.equal(described.code, 'E_TEST')
  t.ok(described.message.length < 300, 'the message is cut like any string')
  t.ok(described.frames.length > 0 && described.frames.every((frame) => frame.startsWith('at ')), 'frames only')
  t.same(describeError({ password: 'p' }), { password: REDACTED }, 'a thrown non-error is sanitised')
})
