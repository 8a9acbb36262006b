// Scenario 4, hostile user ids on a real Redis: ids differing only by case, braces, trailing space, Unicode normalisation or a 4 KB length never share a budget; each key is safe (plain and short, or hashed); a token without `sub` is refused; no token, nor any part of one, is ever in a key (SCAN of the whole Redis).
import t from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { createRedisLimiter } from '../../src/ratelimit/redis-limiter.js'
import { call, startGateway, token } from '../helpers/gateway.js'
import { answerGenerate, generateBody } from '../helpers/generate.js'
import { respArray } from '../helpers/reliability.js'
import { startUpstream } from '../helpers/upstream.js'
import { readyClient } from '../ratelimit/fixtures/setup.js'

/** What a rate-limit key may look like: the id itself when short and plain, else a hash (keys.ts). */
const SAFE_KEY = /^ai_ratelimit:\{(?:[A-Za-z0-9_.@+-]{1,128}|sha256:[0-9a-f]{64}|sha256-utf16:[0-9a-f]{64})\}$/

/** Every key in the Redis, through SCAN (never KEYS on a server anyone else uses). */
async function allKeys (command: (...args: string[]) => Promise<string>): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const reply = await command('SCAN', cursor, 'COUNT', '1000')
    // "*2\r\n$<n>\r\n<cursor>\r\n*<k>\r\n$..\r\nkey\r\n…"
    const [next, ...found] = respArray(reply)
    cursor = next!
    keys.push(...found)
  } while (cursor !== '0')
  return keys
}

t.test('through the gateway: separate budgets, refusals, and nothing of the token in Redis', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '1', AI_ENGINE_REDIS_TIMEOUT_MS: '1000' })
  const tokens: string[] = []
  const generate = async (sub: string | undefined) => {
    const jwt = await token(sub === undefined ? { noSub: true } : { sub })
    tokens.push(jwt)
    return await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${jwt}` }, body: generateBody() })
  }

  // Accepted by identity (1–256 printable ASCII characters): each its own budget of 1.
  const accepted = ['alice', 'Alice', 'ALICE', '{alice}', 'alice}', '{alice', 'a:b', 'auth0|123', 'x'.repeat(128), 'x'.repeat(129), 'y'.repeat(256)]
  for (const sub of accepted) t.equal((await generate(sub)).status, 200, `${JSON.stringify(sub.slice(0, 24))}: its own budget`)
  for (const sub of accepted) t.equal((await generate(sub)).status, 429, `${JSON.stringify(sub.slice(0, 24))}: spent`)

  // Refused before the limiter: never counted, never a key.
  const refused = ['alice ', ' alice', 'al ice', 'caf\u00e9', 'cafe\u0301', 'u'.repeat(4096), '']
  for (const sub of refused) {
    const reply = await generate(sub)
    t.equal(reply.status, 401, `${JSON.stringify(sub.slice(0, 24))} (${sub.length} characters): refused`)
    t.equal(reply.json().error.type, 'UNAUTHORIZED')
  }
  const noSub = await generate(undefined)
  t.equal(noSub.status, 401, 'a token without sub is refused')
  t.match(noSub.json().error.message, /subject/)

  const keys = await allKeys(redis.command)
  t.equal(keys.length, accepted.length, 'one key per accepted user, none for a refused one')
  for (const key of keys) t.match(key, SAFE_KEY, `safe key ${key.slice(0, 60)}`)
  t.ok(keys.every((key) => key.length <= 13 + 2 + 128), 'no key longer than a 128-byte id')
  t.ok(keys.includes('ai_ratelimit:{{alice}}') === false, 'braces are never put in a key raw')
  const segments = tokens.flatMap((jwt) => jwt.split('.'))
  t.notOk(keys.some((key) => key.includes('eyJ') || segments.some((segment) => segment.length >= 8 && key.includes(segment))), 'no token, header, payload or signature in any key')
})

t.test('on the Redis limiter itself: ids the gateway refuses still get separate, hashed keys', async (t) => {
  const server = await startRedis(t)
  const limiter = createRedisLimiter({ redis: await readyClient(t, server), limit: 1, windowMs: 30_000 })
  const ids = ['alice', 'alice ', ' alice', 'caf\u00e9', 'cafe\u0301', 'u'.repeat(4096), 'u'.repeat(4097), '', '\u0000', 'a\r\nb', 'x\ud800']
  for (const id of ids) t.equal((await limiter.check(id)).allowed, true, `${JSON.stringify(id.slice(0, 12))}: its own budget`)
  for (const id of ids) t.equal((await limiter.check(id)).allowed, false, `${JSON.stringify(id.slice(0, 12))}: spent`)
  const keys = await allKeys(server.command)
  t.equal(keys.length, ids.length, 'one key each')
  for (const key of keys) t.match(key, SAFE_KEY, `safe key ${key.slice(0, 60)}`)
  t.notOk(keys.some((key) => key.includes('uuuu')), 'the 4 KB ids are hashed, not stored')
})
