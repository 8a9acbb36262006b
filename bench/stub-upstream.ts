/**
 * The benchmark's stand-in for upstream-ai: as fast as a node:http server
 * can be, so what is measured is whatever sits in front of it.
 *
 * - `POST /v1/ai/generate`: a fixed ~1 KB answer in upstream-ai's shape
 *   (`text`, `usage`, `meta`), so the gateway's cache may store it.
 * - `POST /v1/ai/chat`: an SSE stream of BENCH_SSE_EVENTS events (default 20,
 *   19 `delta` then `done`), BENCH_SSE_INTERVAL_MS apart (default 5), each
 *   written as its own chunk.
 * - `GET /health`: 200.
 *
 * HOST/PORT as the services (PORT=0: a free port, logged as
 * `{"msg":"listening","port":N}`).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

const SSE_EVENTS = Number(process.env.BENCH_SSE_EVENTS ?? 20)
const SSE_INTERVAL_MS = Number(process.env.BENCH_SSE_INTERVAL_MS ?? 5)

const TEXT = 'The Moon moves through your sign today, bringing feelings to the surface and asking you to listen to them. ' +
  'A conversation you have been putting off goes better than you expect: say what you mean, plainly and kindly. ' +
  'Money matters favour patience; a purchase can wait a week. In the evening, time with a friend restores your energy. ' +
  'Venus trines Jupiter, so generosity comes back to you, often from an unexpected direction. ' +
  'Trust the small signs, keep your promises modest, and let the rest of the week unfold at its own pace. '

const GENERATE_ANSWER = Buffer.from(JSON.stringify({
  text: TEXT + TEXT.slice(0, 180),
  usage: { input_tokens: 63, output_tokens: 181, total_tokens: 244 },
  meta: {
    request_id: 'bench-0000000000000000',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    provider: 'mock',
    model: 'mock-1',
    use_case: 'horoscope_daily',
    latency_ms: 0,
    cached: false
  }
}))

const GENERATE_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'content-length': String(GENERATE_ANSWER.length),
  'x-request-id': 'bench-0000000000000000'
}

const HEALTH = Buffer.from('{"status":"healthy"}')

function deltaEvent (i: number): string {
  return `event: delta\ndata: ${JSON.stringify({ text: `word${i} ` })}\n\n`
}
const DONE_EVENT = `event: done\ndata: ${JSON.stringify({ usage: { input_tokens: 12, output_tokens: SSE_EVENTS - 1, total_tokens: 12 + SSE_EVENTS - 1 } })}\n\n`

function stream (res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no'
  })
  let sent = 0
  const next = (): void => {
    if (res.destroyed) return
    sent++
    if (sent < SSE_EVENTS) {
      res.write(deltaEvent(sent))
      setTimeout(next, SSE_INTERVAL_MS)
    } else {
      res.end(DONE_EVENT)
    }
  }
  next()
}

function handle (req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' && req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(HEALTH.length) })
    res.end(HEALTH)
    return
  }
  // Read the body to its end before answering, as a real service does.
  req.resume()
  req.once('end', () => {
    if (req.url?.startsWith('/v1/ai/chat') === true) stream(res)
    else {
      res.writeHead(200, GENERATE_HEADERS)
      res.end(GENERATE_ANSWER)
    }
  })
}

const server = createServer(handle)
// Longer than any keep-alive pool in front (nginx's upstream keepalive_timeout is 60 s):
// a proxy must never reuse a connection this server is closing.
server.keepAliveTimeout = 120_000
server.headersTimeout = 130_000
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'listening', service: 'bench-stub-upstream', address, port })}\n`)
})
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.closeAllConnections()
    server.close(() => process.exit(0))
  })
}
