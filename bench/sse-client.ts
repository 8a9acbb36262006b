/**
 * Streams, one after the other, timed on a raw TCP socket so that nothing
 * between the wire and the clock buffers: the time from writing the request
 * to the first whole event, to the end of the stream, and how the events
 * arrived — how many socket reads carried them and how many HTTP chunks
 * framed them. An event forwarded as soon as it arrives comes in a read of
 * its own (the upstream writes one every 5 ms).
 *
 *   node dist/bench/sse-client.js '<SseSpec as JSON>'   → RESULT <SseResult> on stdout
 */
import { connect } from 'node:net'

export interface SseSpec {
  /** Base URL, e.g. http://127.0.0.1:8080. */
  url: string
  path: string
  headers?: Record<string, string>
  body: string
  streams: number
  /** Streams first opened and thrown away (JIT, pools). @default 3 */
  warmupStreams?: number
}

export interface StreamTiming {
  status: number
  /** ms from the request's last byte written to the first complete event. */
  firstEventMs: number
  /** ms from the request's last byte written to the end of the answer. */
  totalMs: number
  events: number
  /** Socket reads in which at least one event completed. */
  readsWithEvents: number
  /** Most events completed by one read. */
  maxEventsPerRead: number
  /** HTTP/1.1 chunks of the answer body (0 when not chunked). */
  httpChunks: number
}

export interface SseResult {
  streams: number
  failures: number
  firstEventMs: { p50: number; p90: number; max: number }
  totalMs: { p50: number; p90: number; max: number }
  eventsMin: number
  eventsMax: number
  readsWithEventsMin: number
  readsWithEventsMean: number
  maxEventsPerRead: number
  httpChunksMin: number
  /** Every stream: as many reads as events (each event arrived on its own). */
  everyEventOwnRead: boolean
}

/** Incremental `Transfer-Encoding: chunked` decoder. */
class ChunkedDecoder {
  #state: 'size' | 'data' | 'crlf' | 'done' = 'size'
  #line = ''
  #remaining = 0
  chunks = 0

  get done (): boolean { return this.#state === 'done' }

  push (data: Buffer): Buffer {
    const out: Buffer[] = []
    let i = 0
    while (i < data.length && this.#state !== 'done') {
      if (this.#state === 'size') {
        const lf = data.indexOf(0x0a, i)
        if (lf === -1) { this.#line += data.toString('latin1', i); break }
        this.#line += data.toString('latin1', i, lf)
        i = lf + 1
        const size = parseInt(this.#line.trim().split(';')[0] ?? '', 16)
        this.#line = ''
        if (!Number.isFinite(size)) throw new Error('bad chunk size')
        if (size === 0) { this.#state = 'done'; break }
        this.chunks++
        this.#remaining = size
        this.#state = 'data'
      } else if (this.#state === 'data') {
        const take = Math.min(this.#remaining, data.length - i)
        out.push(data.subarray(i, i + take))
        i += take
        this.#remaining -= take
        if (this.#remaining === 0) { this.#state = 'crlf'; this.#line = '' }
      } else {
        const lf = data.indexOf(0x0a, i)
        if (lf === -1) break
        i = lf + 1
        this.#state = 'size'
      }
    }
    return Buffer.concat(out)
  }
}

async function oneStream (spec: SseSpec): Promise<StreamTiming> {
  const { hostname, port } = new URL(spec.url)
  const body = Buffer.from(spec.body)
  const head = [
    `POST ${spec.path} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Accept: text/event-stream',
    'Content-Type: application/json', `Content-Length: ${body.length}`, 'Connection: close',
    ...Object.entries(spec.headers ?? {}).map(([name, value]) => `${name}: ${value}`), '', ''
  ].join('\r\n')
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) })
    socket.setNoDelay(true)
    let sentAt = 0n
    let headerBytes = Buffer.alloc(0)
    let status = 0
    let decoder: ChunkedDecoder | undefined
    let inHeaders = true
    let text = ''
    const timing: StreamTiming = { status: 0, firstEventMs: -1, totalMs: -1, events: 0, readsWithEvents: 0, maxEventsPerRead: 0, httpChunks: 0 }
    const since = (): number => Number(process.hrtime.bigint() - sentAt) / 1e6
    const finish = (): void => {
      if (timing.totalMs < 0) timing.totalMs = since()
      timing.status = status
      timing.httpChunks = decoder?.chunks ?? 0
      socket.destroy()
      resolve(timing)
    }
    const onBody = (data: Buffer): void => {
      text += data.toString('utf8')
      let events = 0
      let boundary: number
      while ((boundary = text.indexOf('\n\n')) !== -1) {
        text = text.slice(boundary + 2)
        events++
      }
      if (events > 0) {
        if (timing.firstEventMs < 0) timing.firstEventMs = since()
        timing.events += events
        timing.readsWithEvents++
        timing.maxEventsPerRead = Math.max(timing.maxEventsPerRead, events)
      }
    }
    socket.on('data', (data: Buffer) => {
      let rest = data
      if (inHeaders) {
        headerBytes = Buffer.concat([headerBytes, data])
        const end = headerBytes.indexOf('\r\n\r\n')
        if (end === -1) return
        const lines = headerBytes.toString('latin1', 0, end).split('\r\n')
        status = Number(lines[0]?.split(' ')[1])
        if (lines.some((line) => /^transfer-encoding:\s*chunked/i.test(line))) decoder = new ChunkedDecoder()
        rest = headerBytes.subarray(end + 4)
        inHeaders = false
      }
      onBody(decoder === undefined ? rest : decoder.push(rest))
      if (decoder?.done === true) finish()
    })
    socket.on('end', finish)
    socket.on('close', finish)
    socket.on('error', reject)
    socket.once('connect', () => {
      // One write, one segment; the clock starts once it is handed to the kernel.
      socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]))
      sentAt = process.hrtime.bigint()
    })
  })
}

const quantile = (values: number[], q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

export async function runStreams (spec: SseSpec): Promise<SseResult> {
  for (let i = 0; i < (spec.warmupStreams ?? 3); i++) await oneStream(spec)
  const timings: StreamTiming[] = []
  let failures = 0
  for (let i = 0; i < spec.streams; i++) {
    try {
      const timing = await oneStream(spec)
      if (timing.status !== 200 || timing.events === 0) failures++
      else timings.push(timing)
    } catch {
      failures++
    }
  }
  const first = timings.map((t) => t.firstEventMs)
  const total = timings.map((t) => t.totalMs)
  return {
    streams: spec.streams,
    failures,
    firstEventMs: { p50: quantile(first, 0.5), p90: quantile(first, 0.9), max: quantile(first, 1) },
    totalMs: { p50: quantile(total, 0.5), p90: quantile(total, 0.9), max: quantile(total, 1) },
    eventsMin: Math.min(...timings.map((t) => t.events)),
    eventsMax: Math.max(...timings.map((t) => t.events)),
    readsWithEventsMin: Math.min(...timings.map((t) => t.readsWithEvents)),
    readsWithEventsMean: timings.reduce((sum, t) => sum + t.readsWithEvents, 0) / Math.max(1, timings.length),
    maxEventsPerRead: Math.max(...timings.map((t) => t.maxEventsPerRead)),
    httpChunksMin: Math.min(...timings.map((t) => t.httpChunks)),
    everyEventOwnRead: timings.length > 0 && timings.every((t) => t.readsWithEvents === t.events)
  }
}

if (process.argv[1]?.endsWith('sse-client.js') === true) {
  runStreams(JSON.parse(process.argv[2] ?? '{}') as SseSpec).then((result) => {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
    process.exit(0)
  }, (error: unknown) => {
    process.stderr.write(`sse-client: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  })
}
