// Identity: every kind of bad bearer token is refused with 401 UNAUTHORIZED naming the problem (never echoing the token) before the body is read, and a good token reaches upstream-ai as X-User-Id.
import t, { type Test } from 'tap'
import { UnsecuredJWT } from 'jose'
import { startUpstream, echo } from '../helpers/upstream.js'
import { call, startGateway, token, TEST_SECRET, type TokenOptions } from '../helpers/gateway.js'

const ISSUER = 'https://auth.test.example'
const AUDIENCE = 'ai-gateway'
const BODY = { use_case: 'horoscope_daily', input: { sign: 'leo' } }

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
  })

  t.test('only the refusals above reached nobody', async (t) => {
    t.equal(upstream.requests.length, 2)
  })
})

t.test('without issuer/audience configured, tokens need neither', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${await token({ sub: 'bob' })}` }, body: BODY })
  t.equal(reply.status, 200)
  t.equal(reply.json().headers['x-user-id'], 'bob')
})
