/**
 * A scriptable stand-in for upstream-ai: a real node:http server on a
 * loopback port 0 that records every request it receives (headers, body,
 * whether the gateway aborted it and when) and answers with a behaviour the
 * test picks: JSON, SSE with delays, hanging, dying mid-stream, resetting.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Teardown } from '../../../common/testkit/process.js'
import { waitFor } from '../../../common/testkit/ports.js'

export interface ReceivedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  /** Name/value pairs as sent on the wire (original spelling, duplicates kept). */
  rawHeaders: string[]
  body: Buffer
  /** Date.now() when the body was complete. */
  receivedAt: number
  /** Date.now() when the exchange closed, either way. */
  closedAt: number | undefined
  /** The gateway went away before the answer was complete. */
  aborted: boolean
  /** Which TCP connection carried it (1-based, in accept order): keep-alive reuse shows as repeats. */
  connection: number
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse, received: ReceivedRequest) => void | Promise<void>

export interface TestUpstream {
  url: string
  port: number
  requests: ReceivedRequest[]
  /** TCP connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  connections: () => number
  behave: (behaviour: Behaviour) => void
  /** Status of `GET /health` (not recorded as a request). @default 200 */
  setHealth: (status: number) => void
  /** Waits until the n-th request (1-based) has arrived. */
  request: (n: number) => Promise<ReceivedRequest>
  /** Waits until a request's exchange has closed, either way (fails after `timeoutMs`). */
  closed: (received: ReceivedRequest, timeoutMs?: number) => Promise<ReceivedRequest>
  close: () => Promise<void>
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

export interface UpstreamOptions {
  /** The server's keep-alive timeout, in ms: above the gateway agent's 4 s idle timeout unless a test races it. @default 5000 */
  keepAliveTimeoutMs?: number
}

export async function startUpstream (t: Teardown, behaviour: Behaviour = answerJson(200, { ok: true }), options: UpstreamOptions = {}): Promise<TestUpstream> {
  let current = behaviour
  const requests: ReceivedRequest[] = []
  let connections = 0
  let healthStatus = 200
  const connectionIds = new WeakMap<object, number>()
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      res.writeHead(healthStatus, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ status: healthStatus === 200 ? 'healthy' : 'unhealthy' }))
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const received: ReceivedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks),
        receivedAt: Date.now(),
        closedAt: undefined,
        aborted: false,
        connection: connectionIds.get(req.socket) ?? 0
      }
      requests.push(received)
      res.on('close', () => {
        received.closedAt = Date.now()
        received.aborted = !res.writableFinished
      })
      Promise.resolve(current(req, res, received)).catch(() => { res.destroy() })
    })
  })
  server.on('connection', (socket) => { connectionIds.set(socket, ++connections) })
  // The upstream's own keep-alive must outlast the gateway agent's idle timeout (4 s).
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const close = async (): Promise<void> => {
    if (!server.listening) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }
  t.teardown(close)
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    connections: () => connections,
    behave: (next) => { current = next },
    setHealth: (status) => { healthStatus = status },
    request: async (n) => await waitFor(() => requests[n - 1], { timeoutMs: 10_000, what: `upstream request #${n}` }),
    closed: async (received, timeoutMs = 5000) => await waitFor(() => received.closedAt === undefined ? undefined : received, { timeoutMs, what: 'the upstream exchange to close' }),
    close
  }
}

export function answerJson (status: number, body: unknown, headers: Record<string, string> = {}): Behaviour {
  return (_req, res) => {
    const payload = JSON.stringify(body)
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers })
    res.end(payload)
  }
}

/** Answers with what it received, so a test can read it from the response too. */
export function echo (): Behaviour {
  return (_req, res, received) => {
    const payload = JSON.stringify({ headers: received.headers, body: received.body.toString('utf8') })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(payload)
  }
}

export interface SseScript {
  /** `data:` payloads, one event each. */
  events: string[]
  /** Delay between events, in ms. @default 0 */
  intervalMs?: number
  /** After the last event: end normally, hang open, or destroy the socket. @default 'end' */
  then?: 'end' | 'hang' | 'die'
  /** Extra bytes written right before dying (e.g. half an event). */
  partial?: string
}

export function answerSse (script: SseScript): Behaviour {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.flushHeaders()
    for (let i = 0; i < script.events.length; i++) {
      if (i > 0 && (script.intervalMs ?? 0) > 0) await sleep(script.intervalMs!)
      if (res.destroyed) return
      res.write(`data: ${script.events[i]}\n\n`)
    }
    if (script.partial !== undefined) res.write(script.partial)
    switch (script.then ?? 'end') {
      case 'end': res.end(); break
      case 'hang': break
      case 'die': setTimeout(() => res.socket?.destroy(), 50); break
    }
  }
}

/** Takes the request and never answers (until the gateway gives up). */
export function hang (): Behaviour {
  return () => {}
}

/** Drops the connection on receipt: a crash before answering. */
export function reset (): Behaviour {
  return (req) => { req.socket.destroy() }
}
