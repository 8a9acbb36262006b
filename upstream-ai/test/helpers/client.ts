/**
 * A small HTTP client for the tests (node:http, one fresh connection per
 * request): whole JSON answers, and SSE streams read as they arrive and
 * abortable at any point.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { waitFor } from '../../../common/testkit/ports.js'

export interface HttpAnswer {
  status: number
  headers: IncomingHttpHeaders
  text: string
  /** The parsed body, or undefined when it is not JSON. */
  json: any
}

export interface SendOptions {
  method?: string
  /** An object is sent as JSON; a string or Buffer as is. */
  body?: unknown
  headers?: Record<string, string>
}

export interface SseEvent { event: string; data: any }

function start (url: string, options: SendOptions): { req: ReturnType<typeof request>; response: Promise<IncomingMessage> } {
  const payload = options.body === undefined
    ? undefined
    : typeof options.body === 'string' || Buffer.isBuffer(options.body) ? options.body : JSON.stringify(options.body)
  const req = request(url, {
    method: options.method ?? (payload === undefined ? 'GET' : 'POST'),
    agent: false,
    headers: {
      ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
      ...options.headers
    }
  })
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve)
    req.once('error', reject)
  })
  req.end(payload)
  return { req, response }
}

export async function send (url: string, options: SendOptions = {}): Promise<HttpAnswer> {
  const { response } = start(url, options)
  const res = await response
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  const text = Buffer.concat(chunks).toString('utf8')
  let json: unknown
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.statusCode ?? 0, headers: res.headers, text, json }
}

/** Parses a whole `text/event-stream` body (as upstream-ai writes it: `event:` then one `data:` line). */
export function parseSse (text: string): SseEvent[] {
  return text.split('\n\n').filter((block) => block.trim() !== '').map((block) => {
    let event = 'message'
    let data = ''
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice('event: '.length)
      else if (line.startsWith('data: ')) data += line.slice('data: '.length)
    }
    let parsed: unknown = data
    try { parsed = JSON.parse(data) } catch { /* kept as text */ }
    return { event, data: parsed }
  })
}

export interface OpenStream {
  status: number
  headers: IncomingHttpHeaders
  /** Events received so far (complete ones only). */
  events: () => SseEvent[]
  waitForEvents: (count: number, timeoutMs?: number) => Promise<SseEvent[]>
  /** Resolves when the server ends the stream. */
  ended: Promise<void>
  /** Closes the connection; returns Date.now() at that moment. */
  abort: () => number
}

/** Starts a request and returns once the response headers arrived; the body is read as it comes. */
export async function openStream (url: string, options: SendOptions = {}): Promise<OpenStream> {
  const { req, response } = start(url, options)
  const res = await response
  let raw = ''
  res.setEncoding('utf8')
  res.on('data', (chunk: string) => { raw += chunk })
  const ended = new Promise<void>((resolve) => {
    res.once('end', resolve)
    res.once('close', resolve)
  })
  res.once('error', () => {})
  const events = (): SseEvent[] => parseSse(raw.slice(0, raw.lastIndexOf('\n\n') + 2))
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    events,
    waitForEvents: async (count, timeoutMs = 5000) => await waitFor(() => {
      const received = events()
      return received.length >= count ? received : undefined
    }, { timeoutMs, what: `${count} SSE events` }),
    ended,
    abort: () => {
      req.destroy()
      return Date.now()
    }
  }
}

/** Starts a request without waiting for anything; `abort` closes its connection and returns Date.now(). */
export function begin (url: string, options: SendOptions = {}): { abort: () => number; response: Promise<IncomingMessage> } {
  const { req, response } = start(url, options)
  response.catch(() => {})
  return {
    abort: () => {
      req.destroy()
      return Date.now()
    },
    response
  }
}
