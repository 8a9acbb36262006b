// Slowloris and slow bodies: 200 connections trickling their headers and 50 trickling their bodies, a byte every 200 ms, are each cut with 408 by the gateway's own timeouts (headers 1 s, whole request 2 s here) and never reach upstream-ai, while a well-behaved client next to them keeps its usual latency; afterwards the gateway holds no more sockets than before.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { waitFor } from '../../../common/testkit/ports.js'
import { startUpstream, echo } from '../helpers/upstream.js'
import { bearer, call, completionLines, startGateway } from '../helpers/gateway.js'
import { socketInodes } from '../helpers/process-stats.js'

const SLOW_HEADERS = 200
const SLOW_BODIES = 50
const DRIP_MS = 200

interface Slow { socket: Socket; openedAt: number; closedAt: number | undefined; text: string }

t.test('slow clients are cut by the gateway\'s timeouts, and others do not notice', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    AI_ENGINE_RATE_LIMIT_ENABLED: 'false',
    AI_GATEWAY_HEADERS_TIMEOUT_SECONDS: '1',
    AI_GATEWAY_REQUEST_BODY_TIMEOUT_SECONDS: '2'
  })
  const auth = await bearer()
  const pid = gateway.child.pid!
  const baselineSockets = socketInodes(pid).size

  const slow: Slow[] = []
  const open = (first: string, drip: string): Slow => {
    const entry: Slow = { socket: connect({ host: '127.0.0.1', port: gateway.port }), openedAt: Date.now(), closedAt: undefined, text: '' }
    entry.socket.on('data', (data: Buffer) => { entry.text += data.toString('latin1') })
    entry.socket.on('error', () => {})
    entry.socket.on('close', () => { entry.closedAt = Date.now() })
    entry.socket.write(first)
    let at = 0
    const timer = setInterval(() => {
      if (entry.closedAt !== undefined || entry.socket.destroyed) {
        clearInterval(timer)
        return
      }
      entry.socket.write(drip[at++ % drip.length]!)
    }, DRIP_MS)
    t.teardown(() => { clearInterval(timer); entry.socket.destroy() })
    slow.push(entry)
    return entry
  }
  for (let i = 0; i < SLOW_HEADERS; i++) open('POST /v1/ai/generate HTTP/1.1\r\nHost: gateway\r\n', 'X-Slow-Header-Name-That-Never-Ends')
  for (let i = 0; i < SLOW_BODIES; i++) {
    open(`POST /v1/ai/generate HTTP/1.1\r\nHost: gateway\r\nAuthorization: ${auth.authorization}\r\nContent-Type: application/json\r\n` +
      `X-Request-Id: slow-body-${i}\r\nContent-Length: 1000\r\n\r\n{"use_case":"horoscope_daily","input":{"pad":"`, 'x')
  }

  // A well-behaved client, meanwhile: one request every 50 ms for 3 s.
  const latencies: number[] = []
  const statuses: number[] = []
  const until = Date.now() + 3000
  while (Date.now() < until) {
    const started = performance.now()
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: { use_case: 'horoscope_daily', input: { sign: 'leo' } } })
    latencies.push(performance.now() - started)
    statuses.push(reply.status)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  latencies.sort((a, b) => a - b)
  const p99 = latencies[Math.floor(latencies.length * 0.99)]!
  t.same([...new Set(statuses)], [200], `the well-behaved client: ${statuses.length} requests, all 200`)
  const median = latencies[Math.floor(latencies.length / 2)]!
  t.ok(median < 50 && p99 < 400, `its latency: median ${median.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`)

  await waitFor(() => slow.every((entry) => entry.closedAt !== undefined) || undefined, { timeoutMs: 5000, what: 'every slow client to be cut' })
  const headerHolds = slow.slice(0, SLOW_HEADERS).map((entry) => entry.closedAt! - entry.openedAt)
  const bodyHolds = slow.slice(SLOW_HEADERS).map((entry) => entry.closedAt! - entry.openedAt)
  t.ok(slow.every((entry) => /^HTTP\/1\.1 408 /.test(entry.text)), 'each was answered 408 before the gateway closed it')
  t.ok(Math.max(...headerHolds) < 2500, `slow headers held at most ${Math.max(...headerHolds)} ms (headers timeout 1 s, checked every 0.5 s)`)
  t.ok(Math.min(...headerHolds) >= 900, 'and not cut before the timeout')
  t.ok(Math.max(...bodyHolds) < 3500, `slow bodies held at most ${Math.max(...bodyHolds)} ms (request timeout 2 s)`)
  t.ok(Math.min(...bodyHolds) >= 1900)

  t.equal(upstream.requests.length, statuses.length, 'upstream-ai saw only the well-behaved requests')
  await waitFor(() => completionLines(gateway).filter((line) => String(line.request_id).startsWith('slow-body-')).length === SLOW_BODIES || undefined, { what: 'the slow bodies\' completion lines' })
  t.ok(completionLines(gateway).filter((line) => String(line.request_id).startsWith('slow-body-')).every((line) => line.http_status === 408 && line.error_type === 'REQUEST_TIMEOUT'),
    'each slow body is logged as 408 REQUEST_TIMEOUT')
  await waitFor(() => socketInodes(pid).size <= baselineSockets + 1 || undefined, { timeoutMs: 3000, what: 'the gateway\'s sockets back to the baseline' })
  t.pass(`the gateway is back to ${socketInodes(pid).size} sockets (baseline ${baselineSockets})`)
})
