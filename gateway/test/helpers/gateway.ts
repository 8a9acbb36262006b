/**
 * Test helpers for the built gateway: start it (node dist/…, PORT=0) in
 * front of a test upstream, sign tokens, and talk to it with a plain
 * node:http client that can stream, time events and disconnect on purpose.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage, type ClientRequest, type OutgoingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { SignJWT } from 'jose'
import { startService, type RunningService, type Teardown } from '../../../common/testkit/process.js'
import { waitFor } from '../../../common/testkit/ports.js'

export const GATEWAY_MAIN = 'dist/gateway/src/main.js'
export const TEST_SECRET = 'gateway-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'

export async function startGateway (t: Teardown, env: Record<string, string | undefined> = {}): Promise<RunningService> {
  return await startService(t, GATEWAY_MAIN, { ENVIRONMENT: 'test', JWT_SECRET_KEY: TEST_SECRET, ...env })
}

export interface TokenOptions {
  sub?: string | undefined
  secret?: string
  alg?: string
  /** Seconds from now (negative: in the past). */
  expiresIn?: number
  notBeforeIn?: number
  issuer?: string
  audience?: string
  noSub?: boolean
  /** No `exp` claim at all. */
  noExp?: boolean
  /** More protected-header fields (`kid`, `jku`, `crit`…). */
  header?: Record<string, unknown>
  /** More claims, or claims of the wrong type (`{ exp: '9999999999' }`). */
  claims?: Record<string, unknown>
}

export async function token (options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  let jwt = new SignJWT({ ...options.claims }).setProtectedHeader({ alg: options.alg ?? 'HS256', typ: 'JWT', ...options.header }).setIssuedAt(now)
  if (options.noSub !== true) jwt = jwt.setSubject(options.sub ?? 'alice')
  if (options.noExp !== true && options.claims?.exp === undefined) jwt = jwt.setExpirationTime(now + (options.expiresIn ?? 3600))
  if (options.notBeforeIn !== undefined) jwt = jwt.setNotBefore(now + options.notBeforeIn)
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer)
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience)
  return await jwt.sign(new TextEncoder().encode(options.secret ?? TEST_SECRET))
}

export const bearer = async (options: TokenOptions = {}): Promise<Record<string, string>> => ({ authorization: `Bearer ${await token(options)}` })

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  text: string
  json: () => any
}

export interface CallOptions {
  method?: string
  headers?: OutgoingHttpHeaders
  /** An object is sent as JSON with content-type application/json. */
  body?: unknown
}

function encode (options: CallOptions): { headers: OutgoingHttpHeaders; payload: Buffer | undefined } {
  let payload: Buffer | undefined
  let contentType: string | undefined
  if (Buffer.isBuffer(options.body)) payload = options.body
  else if (typeof options.body === 'string') payload = Buffer.from(options.body)
  else if (options.body !== undefined) {
    payload = Buffer.from(JSON.stringify(options.body))
    contentType = 'application/json'
  }
  const headers: OutgoingHttpHeaders = { ...(contentType === undefined ? {} : { 'content-type': contentType }), ...options.headers }
  if (payload !== undefined) headers['content-length'] = payload.length
  return { headers, payload }
}

/** One request on a fresh connection; resolves with the whole answer. */
export async function call (baseUrl: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const { headers, payload } = encode(options)
  return await new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method: options.method ?? (payload === undefined ? 'GET' : 'POST'), headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        const text = body.toString('utf8')
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

export interface SseEvent {
  /** ms since the response headers arrived. */
  at: number
  event: string
  data: string
}

export interface OpenStream {
  req: ClientRequest
  res: IncomingMessage
  headersAt: number
  events: SseEvent[]
  /** Resolves when the response ends (or is cut). */
  ended: Promise<{ complete: boolean }>
  /** Waits for at least n events. */
  waitForEvents: (n: number, timeoutMs?: number) => Promise<SseEvent[]>
}

/** Opens a request whose answer is read as server-sent events, timing each one. */
export async function openStream (baseUrl: string, path: string, options: CallOptions = {}): Promise<OpenStream> {
  const { headers, payload } = encode(options)
  return await new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method: options.method ?? 'POST', headers, agent: false }, (res) => {
      const headersAt = Date.now()
      const events: SseEvent[] = []
      let buffered = ''
      res.setEncoding('utf8')
      res.on('data', (text: string) => {
        buffered += text
        let boundary: number
        while ((boundary = buffered.indexOf('\n\n')) !== -1) {
          const block = buffered.slice(0, boundary)
          buffered = buffered.slice(boundary + 2)
          let event = 'message'
          const data: string[] = []
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim()
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
          }
          events.push({ at: Date.now() - headersAt, event, data: data.join('\n') })
        }
      })
      const ended = new Promise<{ complete: boolean }>((resolveEnd) => {
        res.on('end', () => resolveEnd({ complete: true }))
        res.on('error', () => resolveEnd({ complete: false }))
        res.on('close', () => resolveEnd({ complete: res.complete }))
      })
      resolve({
        req,
        res,
        headersAt,
        events,
        ended,
        waitForEvents: async (n, timeoutMs = 10_000) => await waitFor(() => events.length >= n ? events : undefined, { timeoutMs, what: `${n} events` })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Log lines of one kind, e.g. the completion lines. */
export function completionLines (gateway: RunningService): Array<Record<string, any>> {
  return gateway.logs().filter((line) => line.msg === 'request completed')
}

export async function completionLine (gateway: RunningService, requestId: string, timeoutMs = 5000): Promise<Record<string, any>> {
  return await waitFor(() => completionLines(gateway).find((line) => line.request_id === requestId), { timeoutMs, what: `completion line for ${requestId}` })
}

export interface RawReply {
  status: number
  /** Header lines as received, lower-cased names. */
  headers: Array<[string, string]>
  body: string
}

/**
 * Sends one request exactly as written (header spelling, duplicates, any
 * header node:http would refuse to send) over a fresh TCP connection and
 * reads the answer until the gateway closes the connection.
 */
export async function rawCall (baseUrl: string, path: string, headerLines: Array<[string, string]>, body = ''): Promise<RawReply> {
  const { hostname, port } = new URL(baseUrl)
  const head = [`POST ${path} HTTP/1.1`, `Host: ${hostname}:${port}`, ...headerLines.map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', '', ''].join('\r\n')
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const split = text.indexOf('\r\n\r\n')
      const lines = text.slice(0, split).split('\r\n')
      const status = Number(lines[0]?.split(' ')[1])
      const headers = lines.slice(1).map((line): [string, string] => {
        const colon = line.indexOf(':')
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
      })
      let rest = text.slice(split + 4)
      if (headers.some(([name, value]) => name === 'transfer-encoding' && value === 'chunked')) {
        let decoded = ''
        for (;;) {
          const lineEnd = rest.indexOf('\r\n')
          const size = parseInt(rest.slice(0, lineEnd), 16)
          if (!(size > 0)) break
          decoded += Buffer.from(rest.slice(lineEnd + 2)).subarray(0, size).toString('utf8')
          rest = Buffer.from(rest.slice(lineEnd + 2)).subarray(size + 2).toString('utf8')
        }
        rest = decoded
      }
      resolve({ status, headers, body: rest })
    })
    socket.write(head + body)
  })
}
