// Two gateway replicas behind the shipped nginx.conf (its `upstream gateway` given a second server, as docs/deploy-vps.md scales out), sharing one Redis: `kill -9` of one under load costs at most the POSTs it was holding (502: nginx does not resend a POST already sent), every later request is served by the other, connection-refused tries are resent by nginx safely, and the per-user limits stay exact in Redis across the two.
import t from 'tap'
import { startRedis } from '../../common/testkit/redis.js'
import { freePort } from '../../common/testkit/ports.js'
import { startUpstreamAi } from '../../upstream-ai/test/helpers/upstream.js'
import { bearer, startGateway } from '../../gateway/test/helpers/gateway.js'
import { rateLimitKey } from '../../gateway/src/ratelimit/keys.js'
import { waitFor } from '../../common/testkit/ports.js'
import { call } from './helpers/http.js'
import { startNginx } from './helpers/nginx.js'
import { startStubApi } from './helpers/stack.js'
import { reapOnExit } from './helpers/reaper.js'

const LIMIT = 50
const LOOPS = 6
const LOAD_MS = 3000
const KILL_AFTER_MS = 1200
const BODY = JSON.stringify({ use_case: 'horoscope_daily', input: { sign: 'leo' } })
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

interface Sent { id: string; user: string; sentAt: number; status: number; remaining: string | undefined }

t.test('kill -9 of one of two replicas under load', async (t) => {
  const redis = await startRedis(t)
  const upstreamAi = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '20' })
  const replicaEnv = { AI_UPSTREAM_URL: upstreamAi.url, REDIS_URL: redis.url, AI_ENGINE_RATE_LIMIT_PER_MIN: String(LIMIT) }
  const [a, b] = [await startGateway(t, replicaEnv), await startGateway(t, replicaEnv)]
  reapOnExit(a.child)
  reapOnExit(b.child)
  const [addressA, addressB] = [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]
  const api = await startStubApi(t)
  const nginx = await startNginx(t, { gateway: addressA, moreGateways: [addressB], api: `127.0.0.1:${api.port}` })
  const sent: Sent[] = []
  let counter = 0
  const send = async (user: string): Promise<Sent> => {
    const id = `failover-${user}-${++counter}`
    const sentAt = Date.now()
    const reply = await call(nginx.url, '/v1/ai/generate', { method: 'POST', headers: { ...(await bearer({ sub: user })), 'content-type': 'application/json', 'x-request-id': id }, body: BODY })
    const entry = { id, user, sentAt, status: reply.status, remaining: reply.headers['x-ratelimit-remaining'] as string | undefined }
    sent.push(entry)
    return entry
  }
  const servedBy = async (id: string): Promise<string> => String((await waitFor(() => nginx.accessLog().find((line) => line.request_id === id), { what: `the access log line of ${id}` })).upstream_addr)

  // Before: one user's 20 requests, shared round-robin by the two replicas, all counted in the one Redis.
  for (let i = 0; i < 20; i++) t.equal((await send('exact')).status, 200)
  const before = await Promise.all(sent.map(async (entry) => await servedBy(entry.id)))
  t.ok(before.includes(addressA) && before.includes(addressB), `both replicas served them (${before.filter((addr) => addr === addressA).length} by A, ${before.filter((addr) => addr === addressB).length} by B)`)

  // Load from six clients (a new user every 20 requests, so no limit is reached); A is killed outright in the middle of it.
  const start = Date.now()
  const loops = Array.from({ length: LOOPS }, async (_, i) => {
    for (let n = 0; Date.now() - start < LOAD_MS; n++) {
      await send(`load-${i}-${Math.floor(n / 20)}`)
      await sleep(50)
    }
  })
  await sleep(KILL_AFTER_MS)
  a.child.kill('SIGKILL')
  t.same(await a.exited, { code: null, signal: 'SIGKILL' }, 'A died of SIGKILL')
  // The moment its process was gone (and the kernel had closed its sockets): what was sent before may have been inside it.
  const deadAt = Date.now()
  await Promise.all(loops)

  const load = sent.filter((entry) => entry.user.startsWith('load-'))
  const failed = load.filter((entry) => entry.status !== 200)
  t.ok(load.length > 100, `${load.length} requests under load`)
  t.ok(failed.every((entry) => entry.status === 502 && entry.sentAt < deadAt), `only requests A was holding when it died failed: ${failed.length} × 502, all sent before it was gone`)
  t.ok(failed.length <= LOOPS, 'at most one per client in flight')
  const later = load.filter((entry) => entry.sentAt > deadAt)
  t.ok(later.length > 50 && later.every((entry) => entry.status === 200), `all ${later.length} requests sent after it was gone: 200`)
  const laterServers = await Promise.all(later.map(async (entry) => await servedBy(entry.id)))
  t.ok(laterServers.every((addr) => addr.endsWith(addressB)), 'every one of them answered by B')

  // Exact limits: each user's count in Redis is what the two replicas counted, once per request.
  for (const user of new Set(load.map((entry) => entry.user))) {
    const count = Number((await redis.command('ZCARD', rateLimitKey(user))).replace(/^:/, ''))
    const ok = load.filter((entry) => entry.user === user && entry.status === 200).length
    const lost = load.filter((entry) => entry.user === user && entry.status === 502).length
    if (lost > 0 || count !== ok) t.ok(count >= ok && count <= ok + lost, `${user}: Redis counted ${count} for ${ok} answered (+ ${lost} lost with A): never twice`)
    else t.equal(count, ok, `${user}: Redis counted each of its ${ok} requests once`)
  }
  // The user of the first phase now has LIMIT - 20 left, wherever those 20 were counted.
  const after: Sent[] = []
  for (let i = 0; i < 40; i++) after.push(await send('exact'))
  t.same(after.map((entry) => entry.status), [...Array(LIMIT - 20).fill(200), ...Array(40 - (LIMIT - 20)).fill(429)], `B allowed exactly ${LIMIT - 20} more, then 429`)
  t.same(after.slice(0, LIMIT - 20).map((entry) => Number(entry.remaining)), Array.from({ length: LIMIT - 20 }, (_, i) => LIMIT - 21 - i), 'X-RateLimit-Remaining continues from the requests A counted')
})

t.test('a replica that refuses connections: nginx resends to the other, once, safely', async (t) => {
  const upstreamAi = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '1' })
  const alive = await startGateway(t, { AI_UPSTREAM_URL: upstreamAi.url })
  const dead = `127.0.0.1:${await freePort()}`
  const api = await startStubApi(t)
  const nginx = await startNginx(t, { gateway: dead, moreGateways: [`127.0.0.1:${alive.port}`], api: `127.0.0.1:${api.port}` })
  const auth = await bearer()
  for (let i = 0; i < 6; i++) {
    const reply = await call(nginx.url, '/v1/ai/generate', { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'x-request-id': `refused-${i}` }, body: BODY })
    t.equal(reply.status, 200, `request ${i}: 200`)
  }
  const lines = await waitFor(() => { const found = nginx.accessLog().filter((line) => String(line.request_id).startsWith('refused-')); return found.length === 6 ? found : undefined })
  const retried = lines.filter((line) => String(line.upstream_addr) === `${dead}, 127.0.0.1:${alive.port}`)
  t.ok(retried.length >= 1, `${retried.length} request(s) tried the dead replica first and were resent: upstream_status ${retried.map((line) => line.upstream_status).join(' / ')}`)
  t.ok(retried.every((line) => line.upstream_status === '502, 200'))
  t.match(nginx.errorLog(), /connect\(\) failed \(111: Connection refused\)/, 'nginx logs the refusal')
  t.equal(alive.logs().filter((line) => line.msg === 'request completed').length, 6, 'the live replica handled each request exactly once')
})
