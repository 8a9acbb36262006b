/**
 * A plain node:http client for the deploy tests: bodies stay as sent (gzip
 * is not undone, so tests see Content-Encoding), paths go out as written
 * (`/v1/ai/../metrics` is not normalised), the source address can be chosen
 * on loopback, and a stream's chunks are timed as they arrive.
 */
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { gunzipSync } from 'node:zlib'

export interface RawReply {
  status: number
  headers: IncomingHttpHeaders
  /** The body as received (still compressed when Content-Encoding says so). */
  body: Buffer
  /** The body decompressed when gzip, as UTF-8. */
  text: string
  json: () => any
}

export interface CallOptions {
  method?: string
  headers?: OutgoingHttpHeaders
  body?: string | Buffer
  /** A loopback source address other than 127.0.0.1, to be a distinct client. */
  localAddress?: string
  /** https: the CA to trust (Caddy's local root); the host name of `base` is the TLS server name. */
  ca?: Buffer
  /** Connect to this address instead of resolving the host of `base` (e.g. `localhost` → 127.0.0.1 only). */
  connectTo?: string
}

/** node:http or node:https, from the scheme of `base`. */
function send (base: string, path: string, options: CallOptions, defaultMethod: string, onResponse: (res: IncomingMessage) => void): ClientRequest {
  const url = new URL(base)
  const common: RequestOptions = {
    host: options.connectTo ?? url.hostname,
    port: url.port,
    path,
    method: options.method ?? defaultMethod,
    headers: { host: url.host, ...(options.body !== undefined ? { 'content-length': Buffer.byteLength(options.body) } : {}), ...options.headers },
    localAddress: options.localAddress,
    agent: false
  }
  return url.protocol === 'https:'
    ? httpsRequest({ ...common, ca: options.ca, servername: url.hostname }, onResponse)
    : httpRequest(common, onResponse)
}

export async function call (base: string, path: string, options: CallOptions = {}): Promise<RawReply> {
  return await new Promise((resolve, reject) => {
    const req = send(base, path, options, 'GET', (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('error', reject)
      res.once('end', () => {
        const body = Buffer.concat(chunks)
        const text = (res.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body).toString('utf8')
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) })
      })
    })
    req.once('error', reject)
    req.setTimeout(30_000, () => req.destroy(new Error(`${path}: no answer in 30 s`)))
    req.end(options.body)
  })
}

export interface TimedChunk {
  /** Milliseconds since the request was sent. */
  at: number
  text: string
}

export interface StreamReply {
  status: number
  headers: IncomingHttpHeaders
  chunks: TimedChunk[]
  text: string
  /** Milliseconds since the request was sent, per `event:` name, in order of arrival. */
  events: Array<{ event: string; at: number }>
}

/** Sends a request and records when each chunk of the answer arrives. */
export async function timedStream (base: string, path: string, options: CallOptions = {}): Promise<StreamReply> {
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const req = send(base, path, options, 'POST', (res) => {
      const chunks: TimedChunk[] = []
      const events: Array<{ event: string; at: number }> = []
      let pending = ''
      res.setEncoding('utf8')
      res.on('data', (text: string) => {
        const at = performance.now() - started
        chunks.push({ at, text })
        pending += text
        for (let end = pending.indexOf('\n\n'); end !== -1; end = pending.indexOf('\n\n')) {
          const name = /^event: (.+)$/m.exec(pending.slice(0, end))?.[1]
          if (name !== undefined) events.push({ event: name, at })
          pending = pending.slice(end + 2)
        }
      })
      res.once('error', reject)
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks, text: chunks.map((chunk) => chunk.text).join(''), events }))
    })
    req.once('error', reject)
    req.setTimeout(60_000, () => req.destroy(new Error(`${path}: stream not over in 60 s`)))
    req.end(options.body)
  })
}
