// SIGTERM under load with open streams: /health/ready says 503 at once, every request already in flight is answered 200 and every open stream runs to its end, requests arriving later get a clean 503 SERVICE_UNAVAILABLE with Connection: close (never a reset), and the process exits 0 well within the grace period.
import t from 'tap'
import { Agent, request } from 'node:http'
import { waitFor } from '../../../common/testkit/ports.js'
import { startUpstream } from '../helpers/upstream.js'
import { answerGenerate } from '../helpers/generate.js'
import { bearer, call, completionLines, openStream, startGateway, type OpenStream } from '../helpers/gateway.js'

const STREAMS = 20
const LOOPS = 8
const GRACE_SECONDS = 10
const EVENTS = Array.from({ length: 12 }, (_, i) => `{"delta":"${i}"}`)

interface Outcome { sentAt: number; status: number | undefined; error: string | undefined; connection: string | undefined; type: string | undefined }

t.test('SIGTERM under load with open streams', async (t) => {
  // Generate answers after 100 ms; chat streams 12 events, 150 ms apart (about 1.8 s).
  const generate = answerGenerate({ delayMs: 100 })
  const upstream = await startUpstream(t, async (req, res, received) => {
    if (received.url === '/v1/ai/chat') {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const event of EVENTS) {
        if (res.destroyed) return
        res.write(`data: ${event}\n\n`)
        await new Promise((resolve) => setTimeout(resolve, 150))
      }
      res.end()
      return
    }
    await generate(req, res, received)
  })
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_RATE_LIMIT_ENABLED: 'false', AI_GATEWAY_SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS) })
  const auth = await bearer()
  t.equal((await call(gateway.url, '/health/ready')).status, 200, 'ready before')

  const streams: OpenStream[] = await Promise.all(Array.from({ length: STREAMS }, async (_, i) =>
    await openStream(gateway.url, '/v1/ai/chat', { headers: { ...auth, 'x-request-id': `stream-${i}` }, body: { messages: [{ role: 'user', content: 'hi' }] } })))
  await Promise.all(streams.map(async (stream) => await stream.waitForEvents(1)))

  // Load: keep-alive clients sending one generate after another, until they are told the gateway is going.
  const outcomes: Outcome[] = []
  let signalledAt = Infinity
  const payload = JSON.stringify({ use_case: 'horoscope_daily', input: { sign: 'leo' }, options: { temperature: 0.5 } })
  const loop = async (): Promise<void> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (;;) {
        const outcome: Outcome = { sentAt: Date.now(), status: undefined, error: undefined, connection: undefined, type: undefined }
        outcomes.push(outcome)
        await new Promise<void>((resolve) => {
          const req = request(`${gateway.url}/v1/ai/generate`, { method: 'POST', agent, headers: { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
            let body = ''
            res.setEncoding('utf8')
            res.on('data', (chunk: string) => { body += chunk })
            res.on('end', () => {
              outcome.status = res.statusCode
              outcome.connection = res.headers.connection
              try { outcome.type = (JSON.parse(body) as { error?: { type?: string } }).error?.type } catch { /* not JSON */ }
              resolve()
            })
            res.on('error', (error) => { outcome.error = error.message; resolve() })
          })
          req.on('error', (error) => { outcome.error = `${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}`; resolve() })
          req.end(payload)
        })
        if (outcome.status !== 200) return
      }
    } finally {
      agent.destroy()
    }
  }
  const loops = Array.from({ length: LOOPS }, loop)
  await new Promise((resolve) => setTimeout(resolve, 700))

  signalledAt = Date.now()
  gateway.child.kill('SIGTERM')
  const ready = await waitFor(async () => {
    const reply = await call(gateway.url, '/health/ready')
    return reply.status === 503 ? Date.now() : undefined
  }, { intervalMs: 5, timeoutMs: 2000, what: '/health/ready to say 503' })
  t.ok(ready - signalledAt < 200, `/health/ready said 503 ${ready - signalledAt} ms after SIGTERM`)
  // One request certain to arrive while draining (the load loops may all have stopped before readiness said 503).
  const late = await call(gateway.url, '/v1/ai/generate', { headers: auth, body: JSON.parse(payload) })
  t.match({ status: late.status, type: late.json().error?.type, connection: late.headers.connection }, { status: 503, type: 'SERVICE_UNAVAILABLE', connection: 'close' },
    'a request arriving once readiness said 503 gets 503 SERVICE_UNAVAILABLE with Connection: close')

  await Promise.all(loops)
  const before = outcomes.filter((outcome) => outcome.sentAt < signalledAt)
  // Sent once readiness said 503: the gateway was draining for sure. Sent between the signal and
  // that moment: the signal may not have been handled yet, so a 200 is as right as a 503.
  const racing = outcomes.filter((outcome) => outcome.sentAt >= signalledAt && outcome.sentAt < ready)
  const after = outcomes.filter((outcome) => outcome.sentAt >= ready)
  t.same(outcomes.filter((outcome) => outcome.error !== undefined).map((outcome) => outcome.error), [], `no request of ${outcomes.length} failed at the transport: no reset, no hang-up`)
  t.ok(before.length > LOOPS, `${before.length} requests were sent before the signal`)
  t.ok(before.every((outcome) => outcome.status === 200 || (outcome.status === 503 && outcome.type === 'SERVICE_UNAVAILABLE')), 'those in flight at the signal were answered')
  t.ok(before.filter((outcome) => outcome.sentAt < signalledAt - 150).every((outcome) => outcome.status === 200), 'every request well inside the gateway at the signal got its 200')
  t.ok(racing.every((outcome) => outcome.status === 200 || (outcome.status === 503 && outcome.type === 'SERVICE_UNAVAILABLE')),
    `the ${racing.length} sent while the signal was being handled were answered`)
  t.ok(after.every((outcome) => outcome.status === 503 && outcome.type === 'SERVICE_UNAVAILABLE' && outcome.connection === 'close'),
    `the ${after.length} sent once readiness said 503 got 503 SERVICE_UNAVAILABLE with Connection: close`)

  for (const stream of streams) await stream.ended
  t.ok(streams.every((stream) => stream.events.length === EVENTS.length && stream.events.every((event) => event.event === 'message')),
    `all ${STREAMS} open streams ran to their end: ${EVENTS.length} events each, no error event`)

  const exit = await gateway.exited
  const exitedAfter = Date.now() - signalledAt
  t.same(exit, { code: 0, signal: null }, 'exit 0')
  t.ok(exitedAfter < GRACE_SECONDS * 1000, `exited ${exitedAfter} ms after SIGTERM (grace ${GRACE_SECONDS} s)`)
  const lines = completionLines(gateway)
  t.ok(lines.filter((line) => String(line.request_id).startsWith('stream-')).every((line) => line.status === 'success'), 'the streams are logged as successes')
  t.notOk(lines.some((line) => line.http_status === 499 || line.http_status === 502 || line.http_status === 504), 'no request was cut or failed upstream')
})
