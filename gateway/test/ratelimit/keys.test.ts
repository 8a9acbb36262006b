// Rate-limit keys: one Cluster hash slot per user, distinct users never share a key, long or odd ids hashed, nothing raw leaks.
import t from 'tap'
import { createHash } from 'node:crypto'
import { MAX_PLAIN_ID_BYTES, rateLimitKey, userTag } from '../../src/ratelimit/keys.js'

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex')

/** The hash tag Redis Cluster uses: between the first "{" and the next "}". */
function hashTag (key: string): string {
  const open = key.indexOf('{')
  const close = key.indexOf('}', open + 1)
  return key.slice(open + 1, close)
}

t.test('plain ids are kept, inside braces', async (t) => {
  t.equal(rateLimitKey('alice'), 'ai_ratelimit:{alice}')
  t.equal(rateLimitKey('user_42.test@example.com'), 'ai_ratelimit:{user_42.test@example.com}')
  t.equal(rateLimitKey('a+b-c'), 'ai_ratelimit:{a+b-c}')
})

t.test('every key has exactly one non-empty hash tag: the whole tag', async (t) => {
  for (const id of ['alice', '', '{', '}', '{}', '{alice}', 'a}b{c', 'x'.repeat(5000), ' ', '\n', 'é']) {
    const key = rateLimitKey(id)
    t.equal(key.split('{').length, 2, `${JSON.stringify(id.slice(0, 20))}: one "{"`)
    t.equal(key.split('}').length, 2, `${JSON.stringify(id.slice(0, 20))}: one "}"`)
    t.ok(key.endsWith('}'), 'the tag closes the key')
    t.equal(hashTag(key), userTag(id), 'the slot is decided by the user tag alone')
    t.ok(hashTag(key).length > 0, 'never "{}" (an empty tag would hash the whole key)')
  }
})

t.test('ids that differ only by case, whitespace, normalisation or braces get different keys', async (t) => {
  const ids = [
    'alice', 'Alice', 'ALICE', ' alice', 'alice ', 'al ice', 'alice\t', 'alice\n', '\u00a0alice',
    'caf\u00e9', 'cafe\u0301', // NFC and NFD spellings of "café"
    '{alice}', 'alice}', '{alice', 'ali{ce}',
    '', ' ', 'alice\u0000'
  ]
  const keys = ids.map(rateLimitKey)
  t.equal(new Set(keys).size, ids.length, 'all distinct')
})

t.test('odd characters are hashed, never kept', async (t) => {
  for (const id of ['{alice}', 'alice bob', 'caf\u00e9', 'a:b', 'auth0|123', 'a\u0000b', 'a\r\nb']) {
    t.equal(userTag(id), `sha256:${sha256(id)}`, JSON.stringify(id))
  }
})

t.test('long ids are hashed: a 4 KB id gives a short key', async (t) => {
  const boundary = 'a'.repeat(MAX_PLAIN_ID_BYTES)
  t.equal(userTag(boundary), boundary, `${MAX_PLAIN_ID_BYTES} bytes: kept`)
  t.equal(userTag(`${boundary}a`), `sha256:${sha256(`${boundary}a`)}`, `${MAX_PLAIN_ID_BYTES + 1} bytes: hashed`)
  const huge = 'u'.repeat(4096)
  const key = rateLimitKey(huge)
  t.ok(key.length <= 100, `key is ${key.length} characters`)
  t.notMatch(key, /uuuuuuuu/, 'the id itself is not in the key')
})

t.test('a hashed tag can never equal a plain id', async (t) => {
  const hashed = userTag('{alice}')
  t.match(hashed, /^sha256:[0-9a-f]{64}$/)
  t.not(userTag(hashed), hashed, 'an id spelled like a hashed tag is itself hashed (":" is not plain)')
})

t.test('no raw token in a key', async (t) => {
  // Keys are made from the verified user id, never from the token; and a
  // token passed by mistake is over 128 bytes (an RS256 signature alone is 342
  // characters), so it would be hashed.
  const jwt = `eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0.${'c2ln'.repeat(86)}`
  const key = rateLimitKey(jwt)
  t.notMatch(key, /eyJ/, 'hashed')
  t.match(key, /^ai_ratelimit:\{sha256:[0-9a-f]{64}\}$/)
})

t.test('lone surrogates do not collide (UTF-8 would turn both into U+FFFD)', async (t) => {
  const a = userTag('x\ud800')
  const b = userTag('x\udc00')
  t.not(a, b)
  t.match(a, /^sha256-utf16:[0-9a-f]{64}$/)
  t.not(userTag('x\ud83d\ude00'), a, 'a well-formed pair is UTF-8 hashed')
  t.match(userTag('x\ud83d\ude00'), /^sha256:/)
})

t.test('deterministic', async (t) => {
  t.equal(rateLimitKey('caf\u00e9'), rateLimitKey('caf\u00e9'))
})
