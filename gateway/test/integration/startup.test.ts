// Start-up: production refuses to start without a real JWT_SECRET_KEY, bad env values stop start-up naming every variable at once, development falls back to the dev secret with a warning, and the dev-token tool (make token) prints a token the gateway accepts.
import t from 'tap'
import { spawnProcess, type RunningProcess } from '../../../common/testkit/process.js'
import { startUpstream, echo } from '../helpers/upstream.js'
import { call, GATEWAY_MAIN, startGateway, TEST_SECRET } from '../helpers/gateway.js'

const DEV_TOKEN = 'dist/gateway/src/tools/dev-token.js'

async function run (t: Parameters<typeof spawnProcess>[0], script: string, env: Record<string, string | undefined>, args: string[] = []): Promise<RunningProcess & { code: number | null }> {
  const running = spawnProcess(t, process.execPath, [script, ...args], { env: { HOST: '127.0.0.1', PORT: '0', JWT_SECRET_KEY: undefined, ENVIRONMENT: undefined, ...env } })
  const { code } = await running.exited
  return { ...running, code }
}

t.test('production without JWT_SECRET_KEY exits non-zero naming it', async (t) => {
  const result = await run(t, GATEWAY_MAIN, { ENVIRONMENT: 'production' })
  t.not(result.code, 0)
  t.match(result.stderr.join('\n'), /JWT_SECRET_KEY/)
  t.notOk(result.logs().some((line) => line.msg === 'listening'))
})

t.test('production with a short JWT_SECRET_KEY exits non-zero naming it', async (t) => {
  const result = await run(t, GATEWAY_MAIN, { ENVIRONMENT: 'production', JWT_SECRET_KEY: 'too-short-secret' })
  t.not(result.code, 0)
  t.match(result.stderr.join('\n'), /JWT_SECRET_KEY.*too short/)
  t.notOk(result.stderr.join('\n').includes('too-short-secret'), 'the secret itself is not printed')
})

t.test('production with a real secret starts, and says nothing about a dev secret', async (t) => {
  const gateway = await startGateway(t, { ENVIRONMENT: 'production', JWT_SECRET_KEY: TEST_SECRET })
  const listening = gateway.logs().find((line) => line.msg === 'listening')!
  t.equal(listening.address, '127.0.0.1')
  t.equal(listening.port, gateway.port)
  t.notOk(gateway.logs().some((line) => line.level === 'warn'))
})

t.test('bad values stop start-up, every variable named at once', async (t) => {
  const result = await run(t, GATEWAY_MAIN, {
    PORT: 'eighty',
    AI_ENGINE_TIMEOUT_SECONDS: '0',
    AI_GATEWAY_MAX_BODY_BYTES: '-5',
    AI_UPSTREAM_URL: 'not a url',
    AI_GATEWAY_JWT_CLOCK_TOLERANCE_SECONDS: '600'
  })
  t.not(result.code, 0)
  const stderr = result.stderr.join('\n')
  for (const name of ['PORT', 'AI_ENGINE_TIMEOUT_SECONDS', 'AI_GATEWAY_MAX_BODY_BYTES', 'AI_UPSTREAM_URL', 'AI_GATEWAY_JWT_CLOCK_TOLERANCE_SECONDS']) {
    t.match(stderr, new RegExp(`${name}=`), `names ${name}`)
  }
})

t.test('a request timeout shorter than the headers timeout is refused', async (t) => {
  const result = await run(t, GATEWAY_MAIN, { AI_GATEWAY_HEADERS_TIMEOUT_SECONDS: '20', AI_GATEWAY_REQUEST_BODY_TIMEOUT_SECONDS: '5' })
  t.not(result.code, 0)
  t.match(result.stderr.join('\n'), /AI_GATEWAY_REQUEST_BODY_TIMEOUT_SECONDS/)
})

t.test('development without a secret: a warning, and make token\'s token works', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, ENVIRONMENT: 'development', JWT_SECRET_KEY: undefined })
  const warning = gateway.logs().find((line) => line.level === 'warn')
  t.match(String(warning?.msg), /JWT_SECRET_KEY.*development secret/)

  const tool = await run(t, DEV_TOKEN, { ENVIRONMENT: 'development' }, ['alice'])
  t.equal(tool.code, 0)
  t.equal(tool.stdout.length, 1, 'prints the token alone')
  t.match(tool.stdout[0], /^[\w-]+\.[\w-]+\.[\w-]+$/)
  const header = JSON.parse(Buffer.from(tool.stdout[0]!.split('.')[0]!, 'base64url').toString())
  const payload = JSON.parse(Buffer.from(tool.stdout[0]!.split('.')[1]!, 'base64url').toString())
  t.equal(header.alg, 'HS256')
  t.equal(payload.sub, 'alice')
  t.equal(payload.exp - payload.iat, 3600, 'valid for one hour')

  const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${tool.stdout[0]}` }, body: { use_case: 'x' } })
  t.equal(reply.status, 200)
  t.equal(reply.json().headers['x-user-id'], 'alice')
})

t.test('the dev-token tool signs with JWT_SECRET_KEY when set, with the configured issuer and audience', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_JWT_ISSUER: 'me', AI_GATEWAY_JWT_AUDIENCE: 'gw' })
  const tool = await run(t, DEV_TOKEN, { JWT_SECRET_KEY: TEST_SECRET, AI_GATEWAY_JWT_ISSUER: 'me', AI_GATEWAY_JWT_AUDIENCE: 'gw' }, ['bob'])
  t.equal(tool.code, 0)
  const reply = await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${tool.stdout[0]}` }, body: { use_case: 'x' } })
  t.equal(reply.status, 200)
  t.equal(reply.json().headers['x-user-id'], 'bob')
})

t.test('the dev-token tool without a user id prints usage and exits 2', async (t) => {
  const tool = await run(t, DEV_TOKEN, {})
  t.equal(tool.code, 2)
  t.equal(tool.stdout.length, 0)
  t.match(tool.stderr.join('\n'), /usage/)
})

t.test('the dev-token tool refuses to use the dev secret in production', async (t) => {
  const tool = await run(t, DEV_TOKEN, { ENVIRONMENT: 'production' }, ['alice'])
  t.not(tool.code, 0)
  t.equal(tool.stdout.length, 0)
  t.match(tool.stderr.join('\n'), /JWT_SECRET_KEY/)
})
