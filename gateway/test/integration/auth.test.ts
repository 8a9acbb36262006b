// Identity: every kind of bad bearer token (alg none, HS/RS confusion, a kid pointing elsewhere, crit, expired, not yet valid, no exp, wrong iss/aud…) is refused with 401 UNAUTHORIZED naming the problem (never echoing the token) before the body is read — with no Redis key written and no upstream call — the clock leeway is honoured, and a good token reaches upstream-ai as X-User-Id.
import t, { type Test } from 'tap'
import { createHmac, generateKeyPairSync, sign } from 'node:crypto'
import { UnsecuredJWT } from 'jose'
import { startRedis } from '../../../common/testkit/redis.js'
import { startUpstream, echo } from '../helpers/upstream.js'
import { call, startGateway, token, TEST_SECRET, type TokenOptions } from '../helpers/gateway.js'

const ISSUER = 'https://auth.test.example'
const AUDIENCE = 'ai-gateway'
const BODY = { use_case: 'horoscope_daily', input: { sign: 'leo' } }

const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
/** A compact JWS made by hand, for headers jose would not sign (crit, odd algorithms). */
function handmade (header: Record<string, unknown>, payload: Record<string, unknown>, signer: (input: string) => Buffer): string {
  const input = `${b64url(header)}.${b64url(payload)}`
  return `${input}.${signer(input).toString('base64url')}`
}
const hs256 = (secret: string | Buffer) => (input: string): Buffer => createHmac('sha256', secret).update(input).digest()
const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 3600, ...extra })
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()

t.test('bearer token checks', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    AI_GATEWAY_JWT_ISSUER: ISSUER,
    AI_GATEWAY_JWT_AUDIENCE: `other-service,${AUDIENCE}`,
    AI_GATEWAY_JWT_CLOCK_TOLERANCE_SECONDS: '30'
  })
  const good = (options: TokenOptions = {}): TokenOptions => ({ issuer: ISSUER, audience: AUDIENCE, ...options })

  const refused = async (t: Test, authorization: string | undefined, expected: RegExp): Promise<void> => {
    const reply = await call(gateway.url, '/v1/ai/generate', {
      headers: authorization === undefined ? {} : { authorization },
      body: BODY
    })
    t.equal(reply.status, 401)
    const envelope = reply.json()
    t.equal(envelope.error.type, 'UNAUTHORIZED')
    t.match(envelope.error.message, expected)
    t.equal(envelope.meta.request_id, reply.headers['x-request-id'])
    t.match(envelope.meta.trace_id, /^[0-9a-f]{32}$/)
    t.equal(reply.headers['www-authenticate'], 'Bearer')
    const credential = authorization?.replace(/^\S+\s+/, '') ?? ''
    if (credential.length > 0) {
      t.notOk(reply.text.includes(credential), 'the token is never echoed')
      for (const part of credential.split('.').filter((piece) => piece.length > 8)) t.notOk(reply.text.includes(part), 'no part of it either')
    }
  }

  t.test('missing Authorization header', async (t) => { await refused(t, undefined, /missing/i) })
  t.test('empty Authorization header', async (t) => { await refused(t, '', /missing/i) })
  t.test('another scheme', async (t) => { await refused(t, `Basic ${Buffer.from('alice:secret').toString('base64')}`, /malformed/i) })
  t.test('not a JWT', async (t) => { await refused(t, 'Bearer not-a-jwt', /malformed/i) })
  t.test('garbage in three parts', async (t) => { await refused(t, 'Bearer aaaaaaaaaa.bbbbbbbbbb.cccccccccc', /malformed/i) })
  t.test('alg none', async (t) => {
    const unsigned = new UnsecuredJWT({ sub: 'alice', iss: ISSUER, aud: AUDIENCE }).setExpirationTime('1h').encode()
    await refused(t, `Bearer ${unsigned}`, /algorithm/i)
  })
  t.test('HS384', async (t) => { await refused(t, `Bearer ${await token(good({ alg: 'HS384' }))}`, /algorithm/i) })
  t.test('RS256 header (a public-key algorithm)', async (t) => {
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT' })).toString('base64url')
    const payload = Buffer.from(JSON.stringify({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url')
    await refused(t, `Bearer ${header}.${payload}.${Buffer.from('x'.repeat(256)).toString('base64url')}`, /algorithm/i)
  })
  t.test('bad signature', async (t) => { await refused(t, `Bearer ${await token(good({ secret: `${TEST_SECRET}-but-another` }))}`, /signature/i) })
  t.test('tampered payload', async (t) => {
    const [header, , signature] = (await token(good({ sub: 'alice' }))).split('.')
    const forged = Buffer.from(JSON.stringify({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url')
    await refused(t, `Bearer ${header}.${forged}.${signature}`, /signature/i)
  })
  t.test('expired beyond the clock tolerance', async (t) => { await refused(t, `Bearer ${await token(good({ expiresIn: -120 }))}`, /expired/i) })
  t.test('not yet valid beyond the clock tolerance', async (t) => { await refused(t, `Bearer ${await token(good({ notBeforeIn: 120 }))}`, /not yet valid/i) })
  t.test('wrong issuer', async (t) => { await refused(t, `Bearer ${await token(good({ issuer: 'https://evil.example' }))}`, /issuer/i) })
  t.test('no issuer when one is required', async (t) => { await refused(t, `Bearer ${await token({ audience: AUDIENCE })}`, /issuer/i) })
  t.test('wrong audience', async (t) => { await refused(t, `Bearer ${await token(good({ audience: 'someone-else' }))}`, /audience/i) })
  t.test('no sub', async (t) => { await refused(t, `Bearer ${await token(good({ noSub: true }))}`, /subject/i) })
  t.test('no exp: refused, a token must expire', async (t) => { await refused(t, `Bearer ${await token(good({ noExp: true }))}`, /expiry \(exp\)/i) })
  t.test('exp of the wrong type', async (t) => { await refused(t, `Bearer ${await token(good({ claims: { exp: '9999999999' } }))}`, /exp/i) })
  t.test('expired just past the 30 s leeway', async (t) => { await refused(t, `Bearer ${await token(good({ expiresIn: -45 }))}`, /expired/i) })
  t.test('not valid until just past the 30 s leeway', async (t) => { await refused(t, `Bearer ${await token(good({ notBeforeIn: 45 }))}`, /not yet valid/i) })
  t.test('HS/RS confusion: HS256 keyed with the RSA public key', async (t) => {
    await refused(t, `Bearer ${handmade({ alg: 'HS256', typ: 'JWT' }, claims(), hs256(rsaPublicPem))}`, /signature/i)
  })
  t.test('HS/RS confusion: a genuine RS256 signature', async (t) => {
    await refused(t, `Bearer ${handmade({ alg: 'RS256', typ: 'JWT' }, claims(), (input) => sign('sha256', Buffer.from(input), rsa.privateKey))}`, /algorithm/i)
  })
  t.test('alg in lower case', async (t) => { await refused(t, `Bearer ${handmade({ alg: 'hs256' }, claims(), hs256(TEST_SECRET))}`, /algorithm/i) })
  t.test('an unknown kid, signed with another key', async (t) => {
    await refused(t, `Bearer ${await token(good({ secret: 'attacker-secret-0123456789abcdef-0123456789', header: { kid: 'attacker-key-2' } }))}`, /key \(kid\)/i)
  })
  t.test('a kid that is a path, signed with an empty-ish key', async (t) => {
    await refused(t, `Bearer ${handmade({ alg: 'HS256', kid: '../../../../dev/null' }, claims(), hs256(Buffer.alloc(1)))}`, /key \(kid\)/i)
  })
  t.test('an unknown kid on a token signed with the gateway\'s own key: no AI_GATEWAY_JWT_KEY_ID, so no kid is known', async (t) => {
    await refused(t, `Bearer ${await token(good({ header: { kid: 'whatever-2' } }))}`, /key \(kid\)/i)
  })
  t.test('a jwk / jku header offering the attacker\'s own key', async (t) => {
    const attacker = 'attacker-secret-0123456789abcdef-0123456789'
    await refused(t, `Bearer ${handmade({ alg: 'HS256', jku: 'https://evil.example/keys.json', jwk: { kty: 'oct', k: b64url(attacker) } }, claims(), hs256(attacker))}`, /signature/i)
  })
  t.test('a critical header extension it does not know', async (t) => {
    await refused(t, `Bearer ${handmade({ alg: 'HS256', crit: ['x-must-understand'], 'x-must-understand': true }, claims(), hs256(TEST_SECRET))}`, /malformed/i)
  })

  t.test('refused before the body is read: a 401 wins over a malformed body, and nothing reaches upstream', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { 'content-type': 'text/plain' }, body: '{not json' })
    t.equal(reply.status, 401)
    t.equal(upstream.requests.length, 0)
  })

  t.test('a good token reaches upstream-ai with its sub as X-User-Id', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${await token(good({ sub: 'alice@example.com' }))}` }, body: BODY })
    t.equal(reply.status, 200)
    t.equal(reply.json().headers['x-user-id'], 'alice@example.com')
    t.equal(reply.json().headers.authorization, undefined, 'the token is not forwarded')
  })

  t.test('lower-case scheme and a token within the clock tolerance are accepted', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `bearer ${await token(good({ expiresIn: -10, notBeforeIn: 10 }))}` }, body: BODY })
    t.equal(reply.status, 200)
    const edge = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${await token(good({ expiresIn: -25, notBeforeIn: 25 }))}` }, body: BODY })
    t.equal(edge.status, 200, 'expired 25 s ago and valid from 25 s on: inside the 30 s leeway')
  })

  t.test('only the refusals above reached nobody', async (t) => {
    t.equal(upstream.requests.length, 3)
  })
})

t.test('with AI_GATEWAY_JWT_KEY_ID set, a token may name that kid and no other', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_JWT_KEY_ID: 'key-2026' })
  const status = async (options: TokenOptions): Promise<number> =>
    (await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${await token(options)}` }, body: BODY })).status
  t.equal(await status({ sub: 'alice', header: { kid: 'key-2026' } }), 200, 'the configured kid')
  t.equal(await status({ sub: 'alice' }), 200, 'no kid: the one key')
  t.equal(await status({ sub: 'alice', header: { kid: 'key-2025' } }), 401, 'another kid, even signed with our key')
  t.equal(await status({ sub: 'alice', secret: 'attacker-secret-0123456789abcdef-0123456789', header: { kid: 'key-2026' } }), 401, 'the right kid, another key')
  t.equal(upstream.requests.length, 2)
})

t.test('without issuer/audience configured, tokens need neither', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${await token({ sub: 'bob' })}` }, body: BODY })
  t.equal(reply.status, 200)
  t.equal(reply.json().headers['x-user-id'], 'bob')
})

t.test('refused tokens leave no trace: no Redis key (rate limit or cache), no upstream call', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_URL: redis.url,
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_GATEWAY_JWT_ISSUER: ISSUER,
    AI_GATEWAY_JWT_AUDIENCE: AUDIENCE
  })
  const good = (options: TokenOptions = {}): TokenOptions => ({ issuer: ISSUER, audience: AUDIENCE, ...options })
  const tricks = [
    `Bearer ${new UnsecuredJWT(claims()).encode()}`,
    `Bearer ${handmade({ alg: 'HS256', typ: 'JWT' }, claims(), hs256(rsaPublicPem))}`,
    `Bearer ${handmade({ alg: 'RS256', typ: 'JWT' }, claims(), (input) => sign('sha256', Buffer.from(input), rsa.privateKey))}`,
    `Bearer ${await token(good({ secret: 'attacker-secret-0123456789abcdef-0123456789', header: { kid: 'attacker-key-2' } }))}`,
    `Bearer ${await token(good({ expiresIn: -120 }))}`,
    `Bearer ${await token(good({ notBeforeIn: 120 }))}`,
    `Bearer ${await token(good({ noExp: true }))}`,
    `Bearer ${await token(good({ issuer: 'https://evil.example' }))}`,
    `Bearer ${await token(good({ audience: 'someone-else' }))}`
  ]
  for (const authorization of tricks) {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization }, body: BODY })
    t.equal(reply.status, 401)
  }
  t.equal((await redis.command('DBSIZE')).trim(), ':0', 'Redis holds no key at all')
  t.equal(upstream.requests.length, 0, 'upstream-ai was never called')
  t.equal((await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${await token(good())}` }, body: BODY })).status, 200)
  t.not((await redis.command('DBSIZE')).trim(), ':0', 'while a good token writes its rate-limit key (and the cache its entry)')
})
