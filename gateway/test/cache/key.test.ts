// Cache keys: the exact format, key-order independence, every field that changes the answer changes the key, scopes, namespace, and hostile use_case values.
import t from 'tap'
import { createCacheKey, useCaseLabel } from '../../src/cache/key.js'

const globalKey = createCacheKey({ namespace: 'v1', scope: 'global' })
const userKey = createCacheKey({ namespace: 'v1', scope: 'user' })

const base = (): Record<string, unknown> => ({
  use_case: 'summary',
  input: { text: 'A long article.' },
  context: { locale: 'en', audience: ['adults', 'experts'] },
  options: { model: 'gpt-4o-mini', max_tokens: 200, temperature: 0 }
})

t.test('format: ai_cache:{namespace}:{use_case}:{sha256 hex}', async (t) => {
  t.match(globalKey({ body: base() }), /^ai_cache:v1:summary:[0-9a-f]{64}$/)
})

t.test('the order of keys in the body does not matter, at any depth', async (t) => {
  const reordered = {
    options: { temperature: 0, max_tokens: 200, model: 'gpt-4o-mini' },
    context: { audience: ['adults', 'experts'], locale: 'en' },
    input: { text: 'A long article.' },
    use_case: 'summary'
  }
  t.equal(globalKey({ body: reordered }), globalKey({ body: base() }))
  t.equal(globalKey({ body: JSON.parse(JSON.stringify(reordered)) as Record<string, unknown> }), globalKey({ body: base() }))
})

t.test('each field that changes the answer changes the key', async (t) => {
  const reference = globalKey({ body: base() })
  const variants: Record<string, (body: Record<string, any>) => void> = {
    use_case: (body) => { body.use_case = 'translation' },
    input: (body) => { body.input.text = 'A different article.' },
    'input (one character)': (body) => { body.input.text = 'A long article!' },
    context: (body) => { body.context.locale = 'fr' },
    'context (array order)': (body) => { body.context.audience = ['experts', 'adults'] },
    'context absent': (body) => { delete body.context },
    model: (body) => { body.options.model = 'gpt-4o' },
    max_tokens: (body) => { body.options.max_tokens = 201 },
    temperature: (body) => { body.options.temperature = 0.7 },
    'another option': (body) => { body.options.stop = ['\n'] }
  }
  const seen = new Set([reference])
  for (const [name, change] of Object.entries(variants)) {
    const body = base()
    change(body)
    const key = globalKey({ body })
    t.not(key, reference, `${name} changes the key`)
    seen.add(key)
  }
  t.equal(seen.size, Object.keys(variants).length + 1, 'and every variant has its own key')
})

t.test('temperature absent and temperature 0 are the same request', async (t) => {
  const explicit = globalKey({ body: { use_case: 'summary', input: 'x', options: { temperature: 0 } } })
  t.equal(globalKey({ body: { use_case: 'summary', input: 'x', options: {} } }), explicit)
  t.equal(globalKey({ body: { use_case: 'summary', input: 'x' } }), explicit, 'options absent too')
  t.equal(globalKey({ body: { use_case: 'summary', input: 'x', options: { temperature: -0 } } }), explicit)
})

t.test('model absent is not the same as the default model named explicitly (the gateway does not know the upstream default)', async (t) => {
  t.not(
    globalKey({ body: { use_case: 'summary', input: 'x' } }),
    globalKey({ body: { use_case: 'summary', input: 'x', options: { model: 'gpt-4o-mini' } } })
  )
})

t.test('scope global: users share keys; scope user: the user id joins the hash', async (t) => {
  t.equal(globalKey({ body: base(), userId: 'alice' }), globalKey({ body: base(), userId: 'bob' }), 'global ignores the user')
  const alice = userKey({ body: base(), userId: 'alice' })
  t.equal(userKey({ body: base(), userId: 'alice' }), alice, 'stable for one user')
  t.not(userKey({ body: base(), userId: 'bob' }), alice, 'another user, another key')
  t.not(alice, globalKey({ body: base() }), 'never the global key')
  t.notMatch(alice, /alice/, 'the user id is hashed, never in the key in clear')
  t.match(alice, /^ai_cache:v1:summary:[0-9a-f]{64}$/)
  t.throws(() => userKey({ body: base() }), TypeError, 'user scope without a user id is a bug, refused')
  t.throws(() => userKey({ body: base(), userId: '' }), TypeError)
})

t.test('changing the namespace changes every key', async (t) => {
  const v2 = createCacheKey({ namespace: 'v2', scope: 'global' })
  const key = v2({ body: base() })
  t.match(key, /^ai_cache:v2:summary:/)
  t.equal(key.split(':')[3], globalKey({ body: base() }).split(':')[3], 'same hash, new namespace')
  t.not(key, globalKey({ body: base() }))
})

t.test('a namespace that could break the key structure is refused at start-up', async (t) => {
  for (const namespace of ['', 'a:b', 'a b', '{tag}', 'x'.repeat(65), 'é']) {
    t.throws(() => createCacheKey({ namespace, scope: 'global' }), TypeError, JSON.stringify(namespace))
  }
  t.throws(() => createCacheKey({ namespace: 'v1', scope: 'everyone' as 'global' }), TypeError)
})

t.test('a hostile use_case cannot forge another key\'s structure', async (t) => {
  const hostile = [
    'summary:0000',
    'x:v2:summary',
    '{summary}',
    'summary ',
    'sum\nmary',
    '*',
    'ü',
    'x'.repeat(65),
    '~' + 'a'.repeat(16)
  ]
  const keys = new Set<string>()
  for (const useCase of hostile) {
    const key = globalKey({ body: { ...base(), use_case: useCase } })
    const parts = key.split(':')
    t.equal(parts.length, 4, `${JSON.stringify(useCase)}: four parts`)
    t.match(parts[2], /^~[0-9a-f]{16}$/, `${JSON.stringify(useCase)}: the label is a hash`)
    t.match(parts[3], /^[0-9a-f]{64}$/)
    keys.add(key)
  }
  t.equal(keys.size, hostile.length, 'all distinct')
  t.not(keys.has(globalKey({ body: base() })), true, 'none is the plain use_case\'s key')

  // A use_case named like another's label is hashed again, and the use_case is in the hash anyway.
  const label = useCaseLabel('summary:0000')
  t.not(useCaseLabel(label), label)
  t.equal(useCaseLabel('summary_v2-long'), 'summary_v2-long', 'plain names stay readable')
  t.equal(useCaseLabel('x'.repeat(64)), 'x'.repeat(64))
})
