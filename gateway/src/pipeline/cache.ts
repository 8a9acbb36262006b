/**
 * Cache: between body and proxy, only in the pipeline when
 * AI_ENGINE_CACHE_ENABLED is on (docs/caching.md).
 *
 *   not cacheable (chat, temperature > 0, a stream, `no-store`, …)
 *       → `X-Cache: BYPASS`, and the proxy stage answers as without a cache;
 *   cacheable → lookup (bounded by AI_ENGINE_REDIS_TIMEOUT_MS in the failover store)
 *       hit  → the stored answer, `meta.cached: true`, this request's ids; upstream-ai is not called;
 *       miss → one upstream call per key in this process (coalesce.ts), stored when storable;
 *   `Cache-Control: no-cache` → no lookup, the same upstream call, stored when storable.
 *
 * The upstream call is made here, not by the proxy: the whole answer must be
 * read to be stored and shared with the collapsed requests. It is a plain
 * non-streaming POST over an injected undici dispatcher (keep-alive pool),
 * with the proxy's outgoing headers (upstreamRequestHeaders), the proxy's
 * deadline (AI_ENGINE_TIMEOUT_SECONDS → 504 UPSTREAM_TIMEOUT) and its
 * failure answer (refused or reset → 502 UPSTREAM_UNAVAILABLE; a call reset
 * before any byte of an answer, which upstream-ai never read, is sent once
 * more: the keep-alive race, docs/reliability.md row 11). The answer is
 * read up to a bound, never unbounded. An upstream error is passed on as it
 * came (status, headers, body) and stored for nobody.
 *
 * Once this stage has decided (hit, miss or bypass), every answer to the
 * request carries X-Cache and Cache-Status, the gateway's own 502/504 after
 * a miss or bypass included. Refusals before this stage (401, 413, 429, …)
 * carry neither.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import { ApiError } from '../../../common/src/errors.js'
import { sendJson } from '../../../common/src/http.js'
import { describeError } from '../../../common/src/sanitize.js'
import type { Logger } from '../../../common/src/logger.js'
import { formatTraceparent } from '../../../common/src/request-context.js'
import { checkStorableAnswer, createEntry, hitAnswer, withRequestIds, type RequestIds } from '../cache/answer.js'
import type { Coalescer } from '../cache/coalesce.js'
import { cacheHeaders, type CacheOutcome } from '../cache/headers.js'
import type { CacheKeyFunction } from '../cache/key.js'
import { cacheability } from '../cache/policy.js'
import { isGenerateAnswer, type CacheEntry, type CacheStore } from '../cache/store.js'
import { clientResponseHeaders, upstreamRequestHeaders } from '../headers.js'
import { enterUpstream, type UpstreamGate } from '../upstream-gate.js'
import { ClientGoneError } from '../../../common/src/http.js'
import type { NamedStage } from './stage.js'
import { totalTokensOf } from './usage.js'

/** Floor of the bound on an upstream answer read here: far above any text generation, far below trouble. */
export const MIN_UPSTREAM_ANSWER_BYTES = 8 * 1024 * 1024

export interface CacheStageOptions {
  /** The failover store (REDIS_URL set) or the memory store alone. */
  store: CacheStore
  /** createCacheKey({ namespace, scope }). */
  key: CacheKeyFunction
  /** One per process: concurrent identical misses share one upstream call. */
  coalescer: Coalescer<UpstreamAnswer>
  /** AI_ENGINE_CACHE_TTL_SECONDS. @default 3600 */
  ttlSeconds: number
  /** AI_ENGINE_CACHE_MAX_ENTRY_BYTES: larger answers are served, not stored. @default 262144 */
  maxEntryBytes: number
  /** upstream-ai's base URL. */
  upstreamUrl: URL
  /** A keep-alive undici Pool to upstream-ai (one per process, injected). */
  dispatcher: Dispatcher
  /** Deadline for the whole upstream answer, in ms (AI_ENGINE_TIMEOUT_SECONDS × 1000). @default 30000 */
  engineTimeoutMs: number
  /** Consumed by identity when set; not forwarded. @default undefined */
  trustedUserHeader?: string | undefined
  /** The cap on concurrent upstream calls, shared with the proxy stage (AI_GATEWAY_MAX_CONCURRENT_UPSTREAM). @default undefined (no cap) */
  gate?: UpstreamGate | undefined
  /** Monotonic clock, in ms (ctx.upstream times). */
  now: () => number
  /** Wall clock, ms since the epoch: when an entry was stored, its `Age`. @default Date.now */
  clock?: () => number
  /** For store faults the stores did not absorb (they should all be absorbed). */
  logger: Pick<Logger, 'warn'>
}

/** One upstream answer, shared by every request collapsed onto the call. */
export interface UpstreamAnswer {
  status: number
  /** upstream-ai's headers for the client, minus hop-by-hop ones and Content-Length. */
  headers: OutgoingHttpHeaders
  /** The bytes as received. */
  body: Buffer
  /** The body parsed, when it is a JSON object. */
  json: Record<string, unknown> | undefined
  /** The answer was stored in the cache. */
  stored: boolean
  /** Monotonic time the answer was complete. */
  endedAt: number
}

function timeoutError (): ApiError {
  return new ApiError('UPSTREAM_TIMEOUT', 'The AI service did not answer in time.')
}

function unavailable (cause: unknown): ApiError {
  const code = (cause as { code?: unknown } | undefined)?.code
  const message = code === 'ECONNREFUSED'
    ? 'The AI service refused the connection.'
    : 'The AI service closed the connection before answering.'
  return new ApiError('UPSTREAM_UNAVAILABLE', message, { cause })
}

const UNDICI_TIMEOUTS: ReadonlySet<unknown> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

/**
 * The request failed before any byte of an answer in a way that proves
 * upstream-ai never read it whole: a reset (its socket closed with our bytes
 * unread) or a broken pipe, or a close on a connection that had served
 * earlier answers (an idle keep-alive connection it was closing as ours went
 * out). Sending such a request again, once, duplicates nothing.
 */
function unreadByUpstream (error: unknown): boolean {
  const { code, socket } = error as { code?: unknown; socket?: { bytesRead?: unknown } }
  if (code === 'ECONNRESET' || code === 'EPIPE') return true
  return code === 'UND_ERR_SOCKET' && typeof socket?.bytesRead === 'number' && socket.bytesRead > 0
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function parseObject (body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'))
    return isPlainObject(value) ? value : undefined
  } catch {
    return undefined
  }
}

/** `error.type` of an error envelope, for the log; undefined when it is not one. */
function errorTypeOf (json: Record<string, unknown> | undefined): string | undefined {
  const error = json?.error
  return isPlainObject(error) && typeof error.type === 'string' ? error.type : undefined
}

/** The proxy's outgoing headers, in undici's form. */
function toUndiciHeaders (headers: OutgoingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    out[name] = typeof value === 'number' ? String(value) : value
  }
  return out
}

/** Reads a body up to `maxBytes`; past it the body is destroyed and the answer refused. */
async function readBounded (body: AsyncIterable<Buffer> & { destroy: (error?: Error) => unknown }, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let received = 0
  for await (const chunk of body) {
    received += chunk.length
    if (received > maxBytes) {
      body.destroy()
      throw new ApiError('UPSTREAM_UNAVAILABLE', `The AI service's answer is larger than ${maxBytes} bytes.`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, received)
}

function setHeaders (res: ServerResponse, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
}

export function createCacheStage (options: CacheStageOptions): NamedStage {
  const { store, coalescer, ttlSeconds, maxEntryBytes, dispatcher, engineTimeoutMs, now, logger } = options
  const clock = options.clock ?? Date.now
  const origin = options.upstreamUrl.origin
  // As http-proxy-3 joins the target's path and the route.
  const basePath = options.upstreamUrl.pathname.replace(/\/+$/, '')
  const maxAnswerBytes = Math.max(maxEntryBytes, MIN_UPSTREAM_ANSWER_BYTES)

  /** A lookup that cannot fail the request: a store fault is a miss. */
  const lookup = async (key: string): Promise<CacheEntry | undefined> => {
    try {
      return await store.get(key)
    } catch (error) {
      // describeError: name, message, code and frames only; an ioredis error carries its command's arguments (the key, the answer).
      logger.warn({ err: describeError(error), event: 'cache_get_failed' }, 'cache lookup failed: treated as a miss')
      return undefined
    }
  }

  /** A write that cannot fail the request: a store fault means "not stored". */
  const save = async (key: string, entry: CacheEntry): Promise<boolean> => {
    try {
      return await store.set(key, entry, ttlSeconds) === 'stored'
    } catch (error) {
      logger.warn({ err: describeError(error), event: 'cache_set_failed' }, 'cache write failed: the answer is served, not stored')
      return false
    }
  }

  /**
   * The shared upstream call for `key`: one POST, the answer read whole (up
   * to the bound), stored when it may be (a cacheable miss or `no-cache`:
   * the only requests that get here), before the waiters get it.
   * `signal` fires only when every waiting client has gone.
   */
  const fetchAndStore = async (
    key: string, path: string, headers: Record<string, string | string[]>, body: Buffer, signal: AbortSignal
  ): Promise<UpstreamAnswer> => {
    // One slot per shared call (collapsed requests take none), or 503 UPSTREAM_OVERLOADED for all its waiters.
    const release = enterUpstream(options.gate)
    const deadline = new AbortController()
    const timer = setTimeout(() => { deadline.abort(timeoutError()) }, engineTimeoutMs)
    try {
      const send = async (): Promise<Dispatcher.ResponseData> => await dispatcher.request({
        origin,
        path,
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.any([signal, deadline.signal]),
        // Our deadline covers the whole exchange; undici's own timers never fire first.
        headersTimeout: engineTimeoutMs + 1000,
        bodyTimeout: engineTimeoutMs + 1000
      })
      let response: Dispatcher.ResponseData
      try {
        response = await send()
      } catch (error) {
        // The keep-alive race (a pooled connection closed by upstream-ai as the request went out): once more.
        if (!unreadByUpstream(error) || signal.aborted || deadline.signal.aborted) throw error
        response = await send()
      }
      const bytes = await readBounded(response.body, maxAnswerBytes)
      const status = response.statusCode
      const forClient = clientResponseHeaders(response.headers as Parameters<typeof clientResponseHeaders>[0])
      delete forClient['content-length']
      const check = checkStorableAnswer(status, bytes, maxEntryBytes)
      const stored = check.storable && await save(key, createEntry(check.answer, clock()))
      return {
        status,
        headers: forClient,
        body: bytes,
        json: check.storable ? check.answer : parseObject(bytes),
        stored,
        endedAt: now()
      }
    } catch (error) {
      if (deadline.signal.aborted) throw timeoutError()
      // Every waiting client has gone: nobody reads this.
      if (signal.aborted) throw signal.reason
      if (error instanceof ApiError) throw error
      if (UNDICI_TIMEOUTS.has((error as { code?: unknown }).code)) throw timeoutError()
      throw unavailable(error)
    } finally {
      clearTimeout(timer)
      release()
    }
  }

  /** Sends a shared upstream answer to one request, with its own ids when it joined another's call. */
  const sendUpstreamAnswer = (res: ServerResponse, answer: UpstreamAnswer, ids: RequestIds, collapsed: boolean, cache: Record<string, string>): void => {
    let body = answer.body
    let rewritten = false
    if (answer.status === 200 && isGenerateAnswer(answer.json)) {
      // A miss says so (`meta.cached: false`) and carries this request's ids, whoever made the call.
      body = Buffer.from(JSON.stringify(withRequestIds(answer.json, ids, false)))
      rewritten = true
    } else if (collapsed && isPlainObject(answer.json?.meta)) {
      // An error envelope given to a collapsed request names that request, not the one that called.
      const meta: Record<string, unknown> = { ...answer.json.meta, request_id: ids.request_id }
      if (ids.trace_id !== undefined) meta.trace_id = ids.trace_id
      body = Buffer.from(JSON.stringify({ ...answer.json, meta }))
      rewritten = true
    }
    // Anything else (the caller's own error answer, a body that is not JSON) goes out byte for byte.
    res.writeHead(answer.status, {
      ...answer.headers,
      ...(rewritten ? { 'content-type': 'application/json; charset=utf-8' } : {}),
      ...cache,
      'content-length': body.length
    })
    res.end(body)
  }

  return {
    name: 'cache',
    run: async (ctx, req, res) => {
      const requestBody = ctx.body
      if (requestBody === undefined || ctx.userId === undefined || ctx.route === undefined) {
        throw new Error('cache stage reached without identity, route or body')
      }
      const decision = cacheability({ method: ctx.method, path: ctx.route }, requestBody.json, req.headers)
      if (decision.kind === 'bypass' && !decision.store) {
        setHeaders(res, cacheHeaders({ kind: 'bypass', reason: decision.reason, stored: false }))
        return 'next'
      }
      const key = options.key({ body: requestBody.json, userId: ctx.userId })
      const ids: RequestIds = { request_id: ctx.requestId, trace_id: ctx.trace.traceId }

      if (decision.kind === 'cacheable') {
        const entry = await lookup(key)
        if (entry !== undefined) {
          const answer = hitAnswer(entry, ids)
          ctx.cached = true
          ctx.tokensUsed = totalTokensOf(answer)
          sendJson(res, 200, answer, cacheHeaders({ kind: 'hit', entry, ttlSeconds, nowMs: clock() }))
          return 'done'
        }
      }
      // The client may have left during the lookup: start nothing for nobody.
      if (res.destroyed || req.socket.destroyed) return 'done'

      const headers = toUndiciHeaders(upstreamRequestHeaders(req, {
        userId: ctx.userId,
        requestId: ctx.requestId,
        traceparent: formatTraceparent(ctx.trace),
        traceContinued: ctx.trace.parentSpanId !== undefined,
        bodyLength: requestBody.raw.length,
        trustedUserHeader: options.trustedUserHeader
      }))
      // The answer may be served to other clients: never one compressed for this client's taste.
      delete headers['accept-encoding']
      const path = `${basePath}${ctx.route}`
      const raw = requestBody.raw

      // This request's wait ends when its client leaves, or when shutdown ends it.
      const waiter = new AbortController()
      const onClose = (): void => { if (!res.writableFinished) waiter.abort(new ClientGoneError()) }
      res.once('close', onClose)
      ctx.abort = (error) => { waiter.abort(error) }
      ctx.upstream.startedAt = now()
      let shared
      try {
        shared = await coalescer.run(key, async (signal) => await fetchAndStore(key, path, headers, raw, signal), waiter.signal)
      } catch (error) {
        ctx.upstream.endedAt = now()
        if (error instanceof ApiError) {
          setHeaders(res, cacheHeaders(decision.kind === 'cacheable'
            ? { kind: 'miss', stored: false, collapsed: false }
            : { kind: 'bypass', reason: decision.reason, stored: false }))
        }
        throw error
      } finally {
        res.off('close', onClose)
        ctx.abort = undefined
      }
      const { value: answer, collapsed } = shared
      ctx.upstream.endedAt = answer.endedAt
      ctx.collapsed = collapsed
      ctx.tokensUsed = totalTokensOf(answer.json)
      if (answer.status >= 400) ctx.outcome.errorType = errorTypeOf(answer.json) ?? `HTTP_${answer.status}`
      const outcome: CacheOutcome = decision.kind === 'cacheable'
        ? { kind: 'miss', stored: answer.stored, collapsed, fwdStatus: answer.status }
        : { kind: 'bypass', reason: decision.reason, stored: answer.stored, fwdStatus: answer.status }
      sendUpstreamAnswer(res, answer, ids, collapsed, cacheHeaders(outcome))
      return 'done'
    }
  }
}
