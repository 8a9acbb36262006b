// The verified-token cache: a token that passed jose is accepted again without jose until its exp (with the same tolerance and clock), a different signature over the same payload is never a hit, failures are never stored, and the cache stays within its bound.
import t from 'tap'
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { SignJWT } from 'jose'
import { createIdentify, importHs256Key, VerifiedTokenCache } from '../../src/pipeline/identity.js'
import { ApiError } from '../../../common/src/errors.js'

const SECRET = 'identity-cache-test-secret-0123456789-abcdefghijklmnop'
const TOLERANCE = 30
/** A fixed wall-clock start, in ms (whole seconds, as NumericDates are). */
const START = Date.UTC(2026, 10, 26, 12, 0, 0)

function request (authorization: string): IncomingMessage {
  const req = new IncomingMessage(new Socket())
  req.headers = { authorization }
  return req
}

async function sign (claims: { sub?: string; exp?: number; nbf?: number; iss?: string }, secret = SECRET): Promise<string> {
  let jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt(START / 1000)
  if (claims.sub !== undefined) jwt = jwt.setSubject(claims.sub)
  if (claims.exp !== undefined) jwt = jwt.setExpirationTime(claims.exp)
  if (claims.nbf !== undefined) jwt = jwt.setNotBefore(claims.nbf)
  if (claims.iss !== undefined) jwt = jwt.setIssuer(claims.iss)
  return await jwt.sign(new TextEncoder().encode(secret))
}

/** Counts the lookups the cache answered. */
class CountingCache extends VerifiedTokenCache {
  hits = 0
  override get (token: string): string | undefined {
    const sub = super.get(token)
    if (sub !== undefined) this.hits++
    return sub
  }
}

async function setup (options: { maxEntries?: number; issuer?: string } = {}): Promise<{
  clock: { now: number }
  cache: CountingCache
  identify: (token: string) => Promise<string>
}> {
  const clock = { now: START }
  const now = (): number => clock.now
  const cache = new CountingCache({ maxEntries: options.maxEntries ?? 100, clockToleranceSeconds: TOLERANCE, clock: now })
  const identify = createIdentify({
    key: await importHs256Key(SECRET),
    clockToleranceSeconds: TOLERANCE,
    issuer: options.issuer,
    clock: now,
    verifiedTokens: cache
  })
  return { clock, cache, identify: async (token) => await identify(request(`Bearer ${token}`)) }
}

async function refusal (promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof ApiError) return error
    throw error
  }
  throw new Error('expected a refusal')
}

t.test('a verified token is answered from the cache until it expires, with the clock tolerance', async (t) => {
  const { clock, cache, identify } = await setup()
  const token = await sign({ sub: 'alice', exp: START / 1000 + 60 })
  t.equal(await identify(token), 'alice')
  t.equal(cache.hits, 0, 'the first request is verified by jose')
  t.equal(cache.size, 1)
  t.equal(await identify(token), 'alice')
  t.equal(cache.hits, 1, 'the second one is a hit')

  // exp + tolerance - 1 s: still valid (jose: expired when exp <= now - tolerance).
  clock.now = START + (60 + TOLERANCE - 1) * 1000
  t.equal(await identify(token), 'alice')
  t.equal(cache.hits, 2)

  clock.now = START + (60 + TOLERANCE) * 1000
  const error = await refusal(identify(token))
  t.equal(error.type, 'UNAUTHORIZED')
  t.match(error.message, /expired/i, 'refused with jose\'s own reason')
  t.equal(cache.hits, 2, 'an expired entry is not a hit')
  t.equal(cache.size, 0, 'and it was dropped')
})

t.test('nbf is checked again on a hit (a wall clock can step back)', async (t) => {
  const { clock, cache, identify } = await setup()
  const token = await sign({ sub: 'alice', nbf: START / 1000, exp: START / 1000 + 3600 })
  t.equal(await identify(token), 'alice')
  t.equal(await identify(token), 'alice')
  t.equal(cache.hits, 1)
  clock.now = START - (TOLERANCE + 1) * 1000
  t.match((await refusal(identify(token))).message, /not yet valid/i)
  t.equal(cache.size, 0)
})

t.test('a different signature over the same payload is not a hit', async (t) => {
  const { cache, identify } = await setup()
  const token = await sign({ sub: 'alice', exp: START / 1000 + 3600 })
  t.equal(await identify(token), 'alice')
  const [header, payload, signature] = token.split('.') as [string, string, string]

  const forged = `${header}.${payload}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BA' : 'AA'}`
  t.match((await refusal(identify(forged))).message, /signature/i)
  const otherKey = await sign({ sub: 'alice', exp: START / 1000 + 3600 }, `${SECRET}-another`)
  t.equal(otherKey.split('.')[1], payload, 'same header and payload')
  t.match((await refusal(identify(otherKey))).message, /signature/i)
  // Same payload, a signature over another payload.
  const other = await sign({ sub: 'bob', exp: START / 1000 + 3600 })
  t.match((await refusal(identify(`${header}.${payload}.${other.split('.')[2]!}`))).message, /signature/i)

  t.equal(cache.hits, 0)
  t.equal(cache.size, 1, 'failures are never stored')
  t.equal(await identify(token), 'alice', 'the genuine token still is')
  t.equal(cache.hits, 1)
})

t.test('claims checked at insertion stay checked: a refused token is refused every time', async (t) => {
  const { cache, identify } = await setup({ issuer: 'https://auth.example' })
  const wrongIssuer = await sign({ sub: 'alice', iss: 'https://evil.example', exp: START / 1000 + 3600 })
  for (let i = 0; i < 3; i++) t.match((await refusal(identify(wrongIssuer))).message, /issuer/i)
  const noSub = await sign({ iss: 'https://auth.example', exp: START / 1000 + 3600 })
  for (let i = 0; i < 3; i++) t.match((await refusal(identify(noSub))).message, /subject/i)
  const unusableSub = await sign({ sub: 'has space', iss: 'https://auth.example', exp: START / 1000 + 3600 })
  for (let i = 0; i < 3; i++) t.match((await refusal(identify(unusableSub))).message, /usable user id/i)
  t.equal(cache.size, 0)
  t.equal(cache.hits, 0)
})

t.test('the bound holds: the oldest entries go first', async (t) => {
  const { cache, identify } = await setup({ maxEntries: 3 })
  const tokens = await Promise.all(['u0', 'u1', 'u2', 'u3', 'u4'].map(async (sub) => await sign({ sub, exp: START / 1000 + 3600 })))
  for (const token of tokens) t.ok(await identify(token))
  t.equal(cache.size, 3)
  t.equal(cache.get(tokens[0]!), undefined, 'the oldest was evicted')
  t.equal(cache.get(tokens[1]!), undefined)
  t.same(tokens.slice(2).map((token) => cache.get(token)), ['u2', 'u3', 'u4'])
  // An evicted token is verified again (and accepted), still within the bound.
  t.equal(await identify(tokens[0]!), 'u0')
  t.equal(cache.size, 3)
})

t.test('expired entries are swept as new tokens arrive', async (t) => {
  const clock = { now: START }
  const cache = new VerifiedTokenCache({ maxEntries: 100, clockToleranceSeconds: 0, clock: () => clock.now })
  for (let i = 0; i < 4; i++) cache.set(`short-${i}`, { sub: `s${i}`, exp: START / 1000 + 10, nbf: undefined })
  cache.set('long', { sub: 'l', exp: START / 1000 + 3600, nbf: undefined })
  t.equal(cache.size, 5)
  clock.now = START + 11_000
  cache.set('new', { sub: 'n', exp: undefined, nbf: undefined })
  t.equal(cache.size, 2, 'the expired oldest entries went')
  t.equal(cache.get('long'), 'l')
  t.equal(cache.get('new'), 'n', 'no exp: valid while it is cached')
})

t.test('the cache can be turned off', async (t) => {
  const identify = createIdentify({ key: await importHs256Key(SECRET), verifiedTokens: false })
  const now = Math.floor(Date.now() / 1000)
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime(now + 60).sign(new TextEncoder().encode(SECRET))
  t.equal(await identify(request(`Bearer ${token}`)), 'alice')
  t.equal(await identify(request(`Bearer ${token}`)), 'alice')
})

t.test('the bound must be a positive integer', async (t) => {
  for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => new VerifiedTokenCache({ maxEntries, clockToleranceSeconds: 0, clock: Date.now }), RangeError)
  }
})
