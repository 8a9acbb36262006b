// Configuration: defaults, the production JWT secret rule, the trusted-header and timeout cross-checks, and every problem reported at once naming its variable.
import t from 'tap'
import { configProblems } from '../../../common/testkit/config.js'
import { loadConfig } from '../../src/config.js'
import { DEV_JWT_SECRET } from '../../src/dev-secret.js'

const SECRET = 'x'.repeat(32)

const problems = (env: Record<string, string>): string[] => configProblems(loadConfig, env)

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.equal(config.host, '0.0.0.0')
  t.equal(config.port, 8080)
  t.equal(config.upstreamUrl.href, 'http://127.0.0.1:8001/')
  t.equal(config.maxBodyBytes, 1_048_576)
  t.equal(config.engineTimeoutSeconds, 30)
  t.equal(config.streamIdleTimeoutSeconds, 60)
  t.equal(config.shutdownGraceSeconds, 25)
  t.equal(config.jwtClockToleranceSeconds, 30)
  t.equal(config.trustedUserHeader, undefined)
  t.equal(config.level, 'info')
  t.equal(config.jwtSecret, DEV_JWT_SECRET, 'development falls back to the dev secret')
  t.equal(config.usingDevSecret, true)
  t.ok(Object.isFrozen(config))
})

t.test('PORT=0 is allowed', async (t) => {
  t.equal(loadConfig({ PORT: '0' }).port, 0)
})

t.test('production needs a JWT_SECRET_KEY of at least 32 bytes', async (t) => {
  t.match(problems({ ENVIRONMENT: 'production' }), [/^JWT_SECRET_KEY: required in production/])
  t.match(problems({ ENVIRONMENT: 'production', JWT_SECRET_KEY: 'x'.repeat(31) }), [/^JWT_SECRET_KEY: too short \(31 bytes\)/])
  const config = loadConfig({ ENVIRONMENT: 'production', JWT_SECRET_KEY: SECRET })
  t.equal(config.jwtSecret, SECRET)
  t.equal(config.usingDevSecret, false)
})

t.test('trusted header mode needs no secret, even in production; the header name is lower-cased', async (t) => {
  const config = loadConfig({ ENVIRONMENT: 'production', AI_GATEWAY_TRUSTED_USER_HEADER: 'X-User-Id' })
  t.equal(config.trustedUserHeader, 'x-user-id')
  t.equal(config.usingDevSecret, false)
  t.match(problems({ AI_GATEWAY_TRUSTED_USER_HEADER: 'not a header' }), [/^AI_GATEWAY_TRUSTED_USER_HEADER=/])
})

t.test('the request timeout covers the headers: it cannot be shorter', async (t) => {
  t.match(problems({ AI_GATEWAY_HEADERS_TIMEOUT_SECONDS: '10', AI_GATEWAY_REQUEST_BODY_TIMEOUT_SECONDS: '5' }), [/^AI_GATEWAY_REQUEST_BODY_TIMEOUT_SECONDS=5/])
})

t.test('every problem at once, the secret included', async (t) => {
  const found = problems({ ENVIRONMENT: 'production', PORT: '99999', AI_UPSTREAM_URL: 'ftp://x', AI_GATEWAY_JWT_CLOCK_TOLERANCE_SECONDS: '61' })
  t.equal(found.length, 4)
  for (const name of ['PORT', 'AI_UPSTREAM_URL', 'AI_GATEWAY_JWT_CLOCK_TOLERANCE_SECONDS', 'JWT_SECRET_KEY']) {
    t.ok(found.some((problem) => problem.startsWith(name)), name)
  }
})

t.test('audience is a list; LOG_LEVEL and DEBUG resolve the level', async (t) => {
  t.same(loadConfig({ AI_GATEWAY_JWT_AUDIENCE: 'a, b' }).jwtAudience, ['a', 'b'])
  t.equal(loadConfig({ DEBUG: 'true' }).level, 'debug')
  t.equal(loadConfig({ DEBUG: 'true', LOG_LEVEL: 'warn' }).level, 'warn')
})
