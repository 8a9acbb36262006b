// Upstream process faults, produced for real on loopback: nothing listening is a 502 in well under 100 ms; a frozen upstream-ai (SIGSTOP) is a 504 at AI_ENGINE_TIMEOUT_SECONDS and every socket is gone once it runs again (SIGCONT); at AI_GATEWAY_MAX_CONCURRENT_UPSTREAM calls in flight further requests get 503 UPSTREAM_OVERLOADED at once, on both the proxy and the cache path, and the slots come back.
import t from 'tap'
import { freePort, waitFor } from '../../../common/testkit/ports.js'
import { startUpstreamAi } from '../../../upstream-ai/test/helpers/upstream.js'
import { bearer, call, completionLine, startGateway, type Reply } from '../helpers/gateway.js'
import { liveConnectionsOf, socketsOfTo } from '../helpers/process-stats.js'

const GENERATE = { use_case: 'horoscope_daily', input: { sign: 'leo', date: '2026-01-01' } }
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

t.test('connection refused: 502 UPSTREAM_UNAVAILABLE in well under 100 ms', async (t) => {
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: `http://127.0.0.1:${await freePort()}`, AI_ENGINE_CACHE_ENABLED: 'true' })
  const auth = await bearer()
  await call(gateway.url, '/v1/ai/generate', { headers: auth, body: GENERATE })
  const timings: Record<string, number[]> = { proxy: [], cache: [] }
  for (let i = 0; i < 7; i++) {
    for (const [path, body] of [['proxy', { ...GENERATE, options: { temperature: 0.5 } }], ['cache', GENERATE]] as const) {
      const started = performance.now()
      const reply = await call(gateway.url, '/v1/ai/generate', { headers: auth, body })
      timings[path]!.push(performance.now() - started)
      t.equal(reply.status, 502, `${path}: 502`)
      t.equal(reply.json().error.type, 'UPSTREAM_UNAVAILABLE')
      t.match(reply.json().error.message, /refused/)
    }
  }
  for (const [path, values] of Object.entries(timings)) {
    t.ok(median(values) < 100, `${path} path: median ${median(values).toFixed(1)} ms (max ${Math.max(...values).toFixed(1)} ms), under 100 ms`)
  }
})

t.test('a frozen upstream-ai (SIGSTOP): 504 at the deadline, sockets freed after SIGCONT', async (t) => {
  const upstreamAi = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '1' })
  const upstreamPort = upstreamAi.port
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstreamAi.url, AI_ENGINE_TIMEOUT_SECONDS: '1', AI_ENGINE_RATE_LIMIT_ENABLED: 'false' })
  const auth = await bearer()
  t.equal((await call(gateway.url, '/v1/ai/generate', { headers: auth, body: GENERATE })).status, 200, 'answers before the freeze')

  upstreamAi.child.kill('SIGSTOP')
  t.teardown(() => { upstreamAi.child.kill('SIGCONT') })
  const started = Date.now()
  const replies = await Promise.all(Array.from({ length: 5 }, async (_, i) => {
    return await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, 'x-request-id': `frozen-${i}` }, body: { ...GENERATE, input: { sign: 'leo', n: i } } })
  }))
  const elapsed = Date.now() - started
  t.same(replies.map((reply) => reply.status), [504, 504, 504, 504, 504], 'each one 504')
  t.ok(replies.every((reply) => reply.json().error.type === 'UPSTREAM_TIMEOUT'))
  t.ok(elapsed >= 900 && elapsed < 3000, `answered after ${elapsed} ms (deadline 1 s)`)
  const line = await completionLine(gateway, 'frozen-0')
  t.equal(line.error_type, 'UPSTREAM_TIMEOUT')
  // The gateway let go of its side at the deadline; the frozen process still holds its own (CLOSE_WAIT).
  await waitFor(() => socketsOfTo(gateway.child.pid!, upstreamPort).filter((socket) => socket.state !== 'TIME_WAIT').length === 0 || undefined,
    { timeoutMs: 2000, what: 'the gateway to hold no socket to the frozen upstream' })
  t.pass('the gateway holds no socket to the frozen upstream')
  const held = liveConnectionsOf(upstreamPort)
  t.ok(held.length > 0, `while frozen, ${held.length} connection ends linger half-closed (the gateway's orphaned FIN_WAIT, upstream-ai's CLOSE_WAIT): ${[...new Set(held.map((c) => c.state))].join(', ')}`)

  upstreamAi.child.kill('SIGCONT')
  await waitFor(() => liveConnectionsOf(upstreamPort).length === 0 || undefined, { timeoutMs: 3000, what: 'every connection to upstream-ai to close' })
  t.pass('after SIGCONT every connection to upstream-ai is closed on both sides')
  const after = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: GENERATE })
  t.equal(after.status, 200, 'and the gateway answers again')
})

t.test('AI_GATEWAY_MAX_CONCURRENT_UPSTREAM: 503 UPSTREAM_OVERLOADED at once past the cap, on both paths; slots come back', async (t) => {
  const upstreamAi = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '1' })
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstreamAi.url,
    AI_ENGINE_TIMEOUT_SECONDS: '2',
    AI_ENGINE_RATE_LIMIT_ENABLED: 'false',
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_GATEWAY_MAX_CONCURRENT_UPSTREAM: '4'
  })
  const auth = await bearer()
  upstreamAi.child.kill('SIGSTOP')
  t.teardown(() => { upstreamAi.child.kill('SIGCONT') })

  // Two slots on the proxy path (temperature > 0: not cacheable), two on the cache path (distinct misses).
  const cacheable = (n: number): Record<string, unknown> => ({ ...GENERATE, input: { sign: 'leo', n } })
  const held: Array<Promise<Reply>> = [
    call(gateway.url, '/v1/ai/generate', { headers: auth, body: { ...GENERATE, options: { temperature: 0.7 } } }),
    call(gateway.url, '/v1/ai/chat', { headers: auth, body: { messages: [{ role: 'user', content: 'hi' }], stream: false } }),
    call(gateway.url, '/v1/ai/generate', { headers: auth, body: cacheable(1) }),
    call(gateway.url, '/v1/ai/generate', { headers: auth, body: cacheable(2) })
  ]
  // The four are in the gateway (and at the frozen upstream's door) before the next ones.
  await new Promise((resolve) => setTimeout(resolve, 300))
  // Collapsed onto the pending call for cacheable(1): it needs no slot of its own and waits with it.
  const collapsed = call(gateway.url, '/v1/ai/generate', { headers: auth, body: cacheable(1) })

  for (const [label, path, body] of [
    ['proxy path', '/v1/ai/generate', { ...GENERATE, options: { temperature: 0.9 } }],
    ['cache path', '/v1/ai/generate', cacheable(3)],
    ['a stream', '/v1/ai/chat', { messages: [{ role: 'user', content: 'hi' }] }]
  ] as const) {
    const started = performance.now()
    const refused = await call(gateway.url, path, { headers: auth, body })
    const elapsed = performance.now() - started
    t.equal(refused.status, 503, `${label}: 503`)
    t.equal(refused.json().error.type, 'UPSTREAM_OVERLOADED')
    t.equal(refused.json().error.retry_after_ms, 1000)
    t.equal(refused.headers['retry-after'], '1')
    t.ok(elapsed < 100, `${label}: refused in ${elapsed.toFixed(1)} ms`)
  }

  const statuses = (await Promise.all([...held, collapsed])).map((reply) => reply.status)
  t.same(statuses, [504, 504, 504, 504, 504], 'the held calls, and the one collapsed onto them, end at the deadline')
  upstreamAi.child.kill('SIGCONT')
  const replies = await Promise.all(Array.from({ length: 4 }, async (_, i) => await call(gateway.url, '/v1/ai/generate', { headers: auth, body: cacheable(10 + i) })))
  t.same(replies.map((reply) => reply.status), [200, 200, 200, 200], 'every slot came back: four at once pass again')
})
