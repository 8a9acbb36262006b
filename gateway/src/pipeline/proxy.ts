/**
 * Proxy: forwards the validated request to upstream-ai over pooled
 * keep-alive connections (http-proxy-3, classic node:http path) and streams
 * the answer back as it arrives.
 *
 * Why these choices (measured with http-proxy-3 1.23 on this machine):
 * - The node:http path, not `fetchOptions`: it destroys the upstream request
 *   about 200 ms after the client leaves; the fetch path kept the upstream
 *   streaming for 15 s and more.
 * - No `proxyTimeout`: on the fetch path it is a deadline on the whole
 *   exchange and cut a healthy stream (see sagemathinc/http-proxy-3#42); on
 *   the node:http path it is a socket idle timer whose expiry surfaces as a
 *   plain ECONNRESET. We run our own timers: a deadline for non-streaming
 *   answers, an idle timer for streams.
 * - `selfHandleResponse`: once headers are out, an error can no longer be a
 *   JSON answer (writing one leaves the client hanging), so the answer is
 *   relayed here and a broken stream ends with `event: error`.
 * - `buffer`: the body was already read (and validated); its bytes are
 *   forwarded as they are, with their Content-Length, by `end(bytes)` on the
 *   upstream request (see BufferedBody).
 */
import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { createProxyServer } from 'http-proxy-3'
import { ApiError } from '../../../common/src/errors.js'
import { formatTraceparent } from '../../../common/src/request-context.js'
import type { RequestContext } from '../context.js'
import { clientResponseHeaders, upstreamRequestHeaders } from '../headers.js'
import { enterUpstream, type UpstreamGate } from '../upstream-gate.js'
import { EVENT_STREAM, EventSplitter } from './sse.js'
import type { NamedStage } from './stage.js'
import { createUsageTap } from './usage.js'

export interface ProxyOptions {
  /** upstream-ai's base URL. */
  upstreamUrl: URL
  /** The keep-alive pool to upstream-ai (one per process, injected). */
  agent: Agent
  /** Deadline for a whole non-streaming answer, in ms. @default 30000 */
  engineTimeoutMs: number
  /** Longest silence on a stream, in ms. @default 60000 */
  streamIdleTimeoutMs: number
  /** While a stream's upstream is silent, an SSE comment (`: ping`) goes to the client every this many ms; 0: never. @default 0 */
  ssePingMs?: number
  /** The cap on concurrent upstream calls (AI_GATEWAY_MAX_CONCURRENT_UPSTREAM). @default undefined (no cap) */
  gate?: UpstreamGate | undefined
  /** Consumed by identity when set; not forwarded. */
  trustedUserHeader?: string | undefined
  /** Monotonic clock, in ms. */
  now: () => number
}

/**
 * The body already read, as http-proxy-3's `buffer` option: all it does with
 * one is `buffer.pipe(proxyReq)`. Ending the upstream request with the bytes
 * sends the same request as piping a stream of them (headers and body in one
 * write), without a Readable, an async iterator and a pipe per request.
 */
class BufferedBody {
  readonly #bytes: Buffer
  constructor (bytes: Buffer) {
    this.#bytes = bytes
  }

  pipe<T extends NodeJS.WritableStream> (destination: T): T {
    destination.end(this.#bytes)
    return destination
  }
}

/** For errors another listener handles (one shared function, not a closure per request). */
const ignore = (): void => {}

/** Upper bound on an upstream error body kept to read its `error.type` for the log. */
const MAX_ERROR_BODY_BYTES = 64 * 1024

/** An SSE comment: every client ignores it; it only keeps proxies' read timers from firing. */
const PING = ': ping\n\n'

function unavailable (cause?: unknown): ApiError {
  const code = (cause as { code?: unknown } | undefined)?.code
  const message = code === 'ECONNREFUSED'
    ? 'The AI service refused the connection.'
    : 'The AI service closed the connection before answering.'
  return new ApiError('UPSTREAM_UNAVAILABLE', message, { cause })
}

/**
 * One upstream call: owns the timers, relays the answer, and settles once,
 * on whichever comes first: the answer's end, a failure, or the client leaving.
 */
class UpstreamExchange {
  readonly #ctx: RequestContext
  readonly #res: ServerResponse
  readonly #options: ProxyOptions
  readonly #resolve: () => void
  readonly #reject: (error: ApiError) => void
  #proxyReq: ClientRequest | undefined
  #proxyRes: IncomingMessage | undefined
  #timer: NodeJS.Timeout | undefined
  /** Runs while a stream is relayed; refreshed by every write to the client. */
  #pingTimer: NodeJS.Timeout | undefined
  #settled = false
  #timedOut = false
  /** The call was sent a second time (the keep-alive race, see retryable). */
  #retried = false
  #splitter: EventSplitter | undefined

  constructor (ctx: RequestContext, res: ServerResponse, options: ProxyOptions, resolve: () => void, reject: (error: ApiError) => void) {
    this.#ctx = ctx
    this.#res = res
    this.#options = options
    this.#resolve = resolve
    this.#reject = reject
    ctx.upstream.startedAt = options.now()
    // A stream is judged by its silences from the start; anything else by one deadline.
    this.#timer = setTimeout(this.#onTimeout, ctx.stream ? options.streamIdleTimeoutMs : options.engineTimeoutMs)
    // `on`, not `once`: a response closes once, #settle removes it, and once() allocates a wrapper per request.
    res.on('close', this.#onClientClose)
    ctx.abort = this.#abortForShutdown
  }

  /** http-proxy-3 `proxyReq`: the outgoing request has a socket. */
  onRequest (proxyReq: ClientRequest): void {
    this.#proxyReq = proxyReq
    if (this.#settled) proxyReq.destroy()
  }

  /** http-proxy-3 `proxyRes`: upstream-ai answered with headers. */
  onResponse (proxyRes: IncomingMessage): void {
    if (this.#settled) {
      proxyRes.destroy()
      return
    }
    this.#proxyRes = proxyRes
    const res = this.#res
    const status = proxyRes.statusCode ?? 502
    const sse = EVENT_STREAM.test(proxyRes.headers['content-type'] ?? '')
    const expectedStream = this.#ctx.stream
    this.#ctx.stream = sse
    const headers = clientResponseHeaders(proxyRes.headers)
    if (sse) {
      // nginx would otherwise buffer the stream (proxy_buffering), defeating it.
      headers['x-accel-buffering'] = 'no'
      // The gateway may append an error event: the upstream's length would be a lie.
      delete headers['content-length']
      this.#splitter = new EventSplitter()
      this.#restartTimer(this.#options.streamIdleTimeoutMs)
      if ((this.#options.ssePingMs ?? 0) > 0) this.#pingTimer = setTimeout(this.#onPing, this.#options.ssePingMs)
    } else if (expectedStream) {
      // A chat call expected to stream answered with one body: it gets the non-streaming deadline from now.
      this.#restartTimer(this.#options.engineTimeoutMs)
    }
    res.writeHead(status, headers)
    // Send the headers now: a stream's client should see them before the first event.
    if (sse) res.flushHeaders()

    const errorBody = status >= 400 ? [] as Buffer[] : undefined
    let errorBodyBytes = 0
    // tokens_used: the stream's `done` event as it passes, or the JSON answer's usage at its end (usage.ts).
    const usage = createUsageTap({ status, contentType: proxyRes.headers['content-type'], stream: sse, promptTokens: this.#ctx.promptTokens }, (tokens) => { this.#ctx.tokensUsed = tokens })
    proxyRes.on('data', (chunk: Buffer) => {
      if (errorBody !== undefined && errorBodyBytes + chunk.length <= MAX_ERROR_BODY_BYTES) {
        errorBody.push(chunk)
        errorBodyBytes += chunk.length
      }
      let out: Buffer | undefined = chunk
      if (this.#splitter !== undefined) {
        out = this.#splitter.push(chunk)
        // Silence is the lack of whole events: an upstream dripping the bytes of one that never ends is silent too.
        if (out !== undefined) this.#timer?.refresh()
      }
      if (out !== undefined) {
        usage.push(out)
        this.#pingTimer?.refresh()
      }
      if (out !== undefined && !res.write(out)) {
        // Backpressure: a slow client slows the upstream read, nothing piles up here.
        proxyRes.pause()
        res.once('drain', () => {
          // Waiting on the client is not upstream silence.
          this.#timer?.refresh()
          proxyRes.resume()
        })
      }
    })
    // `on`, not `once` (here and below): a stream emits each of these once, and once() allocates a wrapper per request.
    proxyRes.on('end', () => {
      if (this.#settled) return
      if (errorBody !== undefined) this.#ctx.outcome.errorType = errorTypeOf(errorBody) ?? `HTTP_${status}`
      usage.end()
      const held = this.#splitter?.flush()
      if (held !== undefined) res.write(held)
      res.end()
      this.#settle()
    })
    // 'close' without 'end': upstream-ai died mid-answer (the 'error' that may precede it says the same).
    proxyRes.on('error', ignore)
    proxyRes.on('close', () => {
      // Settled already when the gateway itself destroyed it (client gone, timeout): no error to build (a stack each, 1 000 at a time).
      if (!proxyRes.complete && !this.#settled) this.#failAfterHeaders(new ApiError('UPSTREAM_UNAVAILABLE', 'The AI service closed its answer before it was complete.'))
    })
  }

  /**
   * The keep-alive race: upstream-ai closed an idle pooled connection just as
   * this request was written on it, so the request got a reset (or a close)
   * before any byte of an answer. The upstream closed it with the request
   * unread, so sending it again, once, duplicates nothing (Node's own advice
   * for `request.reusedSocket`). Only on a reused connection: on a fresh one
   * a reset may come from a crash after the request was read.
   */
  retryable (error: unknown): boolean {
    if (this.#retried || this.#settled || this.#timedOut || this.#proxyRes !== undefined || this.#res.destroyed) return false
    if (this.#proxyReq?.reusedSocket !== true) return false
    const code = (error as { code?: unknown } | undefined)?.code
    if (code !== 'ECONNRESET' && code !== 'EPIPE') return false
    this.#retried = true
    return true
  }

  /**
   * http-proxy-3's error callback: the upstream request failed before an
   * answer (refused, reset, unresolvable: for the client all mean upstream-ai
   * is unavailable; the cause stays on the ApiError).
   */
  onError (error: unknown): void {
    if (this.#settled) return
    const apiError = this.#timedOut ? timeoutError() : unavailable(error)
    if (this.#res.headersSent) {
      this.#failAfterHeaders(apiError)
      return
    }
    this.#settle(apiError)
  }

  readonly #onTimeout = (): void => {
    if (this.#settled) return
    this.#timedOut = true
    this.#proxyReq?.destroy()
    if (this.#res.headersSent) {
      this.#failAfterHeaders(timeoutError(this.#splitter !== undefined))
      return
    }
    this.#settle(timeoutError(this.#ctx.stream))
  }

  /**
   * The client has had nothing for a ping period: send a comment. Only between
   * whole events (the splitter holds partial ones back), and without touching
   * the idle timer, which measures upstream silence alone.
   */
  readonly #onPing = (): void => {
    if (this.#settled || this.#res.writableEnded || this.#res.destroyed) return
    if (this.#splitter?.midEvent !== true) this.#res.write(PING)
    this.#pingTimer?.refresh()
  }

  readonly #onClientClose = (): void => {
    if (this.#settled) return
    // The client left before the answer was complete: stop the upstream work too (no tokens spent for nobody).
    this.#proxyReq?.destroy()
    this.#proxyRes?.destroy()
    this.#settle()
  }

  readonly #abortForShutdown = (error: ApiError): void => {
    if (this.#settled) return
    this.#proxyReq?.destroy()
    if (this.#res.headersSent) this.#failAfterHeaders(error)
    else this.#settle(error)
  }

  /** Headers are out: a stream ends with `event: error`; any other answer can only be cut. */
  #failAfterHeaders (error: ApiError): void {
    if (this.#settled) return
    const ctx = this.#ctx
    ctx.outcome.errorType = error.type
    this.#proxyReq?.destroy()
    this.#proxyRes?.destroy()
    if (this.#splitter !== undefined && !this.#res.writableEnded) {
      this.#res.end(this.#splitter.errorEvent(error, { request_id: ctx.requestId, trace_id: ctx.trace.traceId }))
    } else {
      ctx.outcome.cutByGateway = true
      this.#res.destroy()
    }
    this.#settle()
  }

  #restartTimer (ms: number): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(this.#onTimeout, ms)
  }

  #settle (error?: ApiError): void {
    if (this.#settled) return
    this.#settled = true
    clearTimeout(this.#timer)
    clearTimeout(this.#pingTimer)
    this.#ctx.upstream.endedAt = this.#options.now()
    this.#ctx.abort = undefined
    this.#res.off('close', this.#onClientClose)
    if (error === undefined) this.#resolve()
    else this.#reject(error)
  }
}

function timeoutError (stream = false): ApiError {
  return new ApiError('UPSTREAM_TIMEOUT', stream
    ? 'The AI service\'s stream went silent for too long.'
    : 'The AI service did not answer in time.')
}

/** `error.type` of an upstream error envelope, for the log; undefined when it is not one. */
function errorTypeOf (chunks: Buffer[]): string | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    const type = (value as { error?: { type?: unknown } } | null)?.error?.type
    return typeof type === 'string' ? type : undefined
  } catch {
    return undefined
  }
}

/**
 * The exchange of a request, for http-proxy-3's events (they carry `req`):
 * a property of the request itself, not a WeakMap keyed by it. One WeakMap
 * entry per request churns the table, and the GC then kept every request's
 * objects alive past its end (see ../in-flight.ts; a churning WeakMap was
 * the worst case measured).
 */
const EXCHANGE = Symbol('ai-gateway.exchange')
type ExchangeCarrier = IncomingMessage & { [EXCHANGE]?: UpstreamExchange }

function exchangeOf (req: IncomingMessage): UpstreamExchange | undefined {
  return (req as ExchangeCarrier)[EXCHANGE]
}

export function createProxyStage (options: ProxyOptions): NamedStage {
  const proxy = createProxyServer({
    target: options.upstreamUrl,
    agent: options.agent,
    selfHandleResponse: true,
    // Host names upstream-ai; the client's Host travels as X-Forwarded-Host.
    changeOrigin: true,
    // X-Forwarded-* are set (replaced, not appended) by upstreamRequestHeaders.
    xfwd: false
  })
  proxy.on('proxyReq', (proxyReq, req) => { exchangeOf(req)?.onRequest(proxyReq) })
  proxy.on('proxyRes', (proxyRes, req) => { exchangeOf(req)?.onResponse(proxyRes) })
  // http-proxy-3 reports "client gone, upstream request destroyed" as `econnreset`; the exchange saw the close already.
  proxy.on('econnreset', () => {})

  return {
    name: 'proxy',
    run: async (ctx, req, res) => {
      const body = ctx.body
      if (body === undefined || ctx.userId === undefined || ctx.route === undefined) {
        throw new Error('proxy stage reached without identity, route or body')
      }
      // The client may have left during an earlier stage: nothing to forward for nobody.
      if (res.destroyed || req.socket.destroyed) return 'done'
      // http-proxy-3 builds the outgoing request from req.headers and req.url (as its own passes do).
      req.headers = upstreamRequestHeaders(req, {
        userId: ctx.userId,
        requestId: ctx.requestId,
        traceparent: formatTraceparent(ctx.trace),
        traceContinued: ctx.trace.parentSpanId !== undefined,
        bodyLength: body.raw.length,
        trustedUserHeader: options.trustedUserHeader
      }) as IncomingMessage['headers']
      req.url = ctx.route
      // A slot for the life of the exchange, or 503 UPSTREAM_OVERLOADED at once (upstream-gate.ts).
      const release = enterUpstream(options.gate)
      try {
        await new Promise<void>((resolve, reject) => {
          const exchange = new UpstreamExchange(ctx, res, options, resolve, reject)
          ;(req as ExchangeCarrier)[EXCHANGE] = exchange
          const forward = (): void => {
            proxy.web(req, res, { buffer: new BufferedBody(body.raw) as unknown as Readable }, (error) => {
              if (exchange.retryable(error)) forward()
              else exchange.onError(error)
            })
          }
          forward()
        })
      } finally {
        release()
      }
      return 'done'
    }
  }
}
