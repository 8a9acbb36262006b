/**
 * The completion log: exactly one `request completed` info line per
 * `/v1/ai/*` request, whatever the outcome (an answer, a refusal, a rate
 * limit, a client that left), written when the response closes. The same
 * record feeds the metrics, in the same place, so the two always agree.
 *
 * The line carries identifiers, the route, the outcome, timings and token
 * usage; never a body, a token or a header value. Request-derived values
 * (`user_id`, `use_case`, an upstream's `error_type`) go through the
 * sanitizer like everything else that carries request data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../../../common/src/logger.js'
import { REDACTED, type Sanitizer } from '../../../common/src/sanitize.js'
import type { RequestContext } from '../context.js'
import type { Metrics } from '../metrics.js'

/** nginx's "client closed request": the client left before its answer was complete. */
export const CLIENT_CLOSED_REQUEST = 499

/** What the cache decided, from the answer's `X-Cache` header; null when the cache did not see the request. */
export type CacheResult = 'hit' | 'miss' | 'bypass'

export interface CompletionRecord {
  request_id: string
  trace_id: string
  user_id: string | null
  use_case: string | null
  /** The matched route, or `unmatched` (keeps the label set bounded). */
  route: string
  method: string
  http_status: number
  status: 'success' | 'error' | 'rate_limited'
  error_type?: string
  latency_ms: number
  upstream_latency_ms: number | null
  /** The upstream's `usage.total_tokens`; null when unknown. */
  tokens_used: number | null
  /** The answer came from the cache. */
  cached: boolean
  /** The cache's decision (`X-Cache`), null when the cache did not decide. */
  cache: CacheResult | null
  /** The answer was shared from another request's upstream call (cache coalescing). */
  collapsed: boolean
  rate_limited: boolean
  stream: boolean
  client_aborted: boolean
}

const round = (ms: number): number => Math.round(ms * 100) / 100

function cacheResult (header: ReturnType<ServerResponse['getHeader']>): CacheResult | null {
  const value = (Array.isArray(header) ? header[0] : header)?.toString().trim().toLowerCase()
  return value === 'hit' || value === 'miss' || value === 'bypass' ? value : null
}

export function completionRecord (ctx: RequestContext, req: IncomingMessage, res: ServerResponse, closedAt: number): CompletionRecord {
  // Node answered 408 itself and closed the socket: a slow client, not one that left.
  const requestTimedOut = (req.socket as { errored?: { code?: string } | null } | null)?.errored?.code === 'ERR_HTTP_REQUEST_TIMEOUT'
  const clientAborted = !res.writableFinished && !ctx.outcome.cutByGateway && !requestTimedOut
  const httpStatus = clientAborted ? CLIENT_CLOSED_REQUEST : requestTimedOut ? 408 : res.statusCode
  const errorType = ctx.outcome.errorType ?? (requestTimedOut ? 'REQUEST_TIMEOUT' : undefined)
  const { startedAt, endedAt } = ctx.upstream
  const cache = cacheResult(res.getHeader('x-cache'))
  return {
    request_id: ctx.requestId,
    trace_id: ctx.trace.traceId,
    user_id: ctx.userId ?? null,
    use_case: ctx.useCase ?? null,
    route: ctx.route ?? 'unmatched',
    method: ctx.method,
    http_status: httpStatus,
    status: ctx.rateLimited ? 'rate_limited' : httpStatus < 400 && errorType === undefined ? 'success' : 'error',
    ...(errorType === undefined ? {} : { error_type: errorType }),
    latency_ms: round(closedAt - ctx.receivedAt),
    upstream_latency_ms: startedAt === undefined ? null : round((endedAt ?? closedAt) - startedAt),
    tokens_used: ctx.tokensUsed ?? null,
    cached: ctx.cached || cache === 'hit',
    cache,
    collapsed: ctx.collapsed,
    rate_limited: ctx.rateLimited,
    stream: ctx.stream,
    client_aborted: clientAborted
  }
}

export interface CompletionLogOptions {
  logger: Logger
  /** The service's sanitizer (with AI_ENGINE_LOG_REDACT_KEYS). */
  sanitize: Sanitizer
  /** Recorded from the same record as the line. @default undefined (no metrics) */
  metrics?: Metrics | undefined
  /** Monotonic clock, in ms (the one ctx.receivedAt was read from). */
  now: () => number
  /** Also given each record, after the line and the metrics (the usage ledger); must not throw. @default [] */
  listeners?: ReadonlyArray<(record: CompletionRecord) => void>
}

export interface CompletionLog {
  /** Starts following one `/v1/ai/*` request: in flight now, one line (and one metrics record) when its response closes. */
  track: (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => void
}

/**
 * Keys a record has at most (it has 19 today): a sanitizer that keeps this many entries of a flat object keeps a whole record.
 * At most the sanitizer's default maxEntries (50): at 64 the probe below failed and every line took the slow path.
 */
const MAX_RECORD_KEYS = 32

/**
 * The line of a record: the record sanitised. A record is flat, so what the
 * sanitizer does to it is learnt once, from probes: that it keeps a flat
 * object's entries, and for each key (on first sight) whether it redacts
 * its value or keeps it. A line then passes only its strings through the
 * sanitizer (the values it cuts), without walking and copying the record.
 * A sanitizer that does anything else sanitises each record whole.
 */
export function createLineSanitizer (sanitize: Sanitizer): (record: CompletionRecord) => Record<string, unknown> {
  const whole = (record: CompletionRecord): Record<string, unknown> => sanitize(record) as Record<string, unknown>
  const wide: Record<string, string> = {}
  for (let i = 0; i < MAX_RECORD_KEYS; i++) wide[`key_${i}`] = 'x'
  const seen = sanitize(wide) as Record<string, unknown> | null
  if (seen === null || typeof seen !== 'object' || Object.keys(seen).length !== MAX_RECORD_KEYS) return whole
  /** Per key: true when its value is redacted, false when kept; never set for a key the sanitizer treats otherwise. */
  const redacts = new Map<string, boolean>()
  const redactsKey = (key: string): boolean | undefined => {
    let verdict = redacts.get(key)
    if (verdict === undefined) {
      const out = sanitize({ [key]: 'x' }) as Record<string, unknown> | null
      const value = out !== null && typeof out === 'object' && Object.keys(out).length === 1 ? out[key] : undefined
      verdict = value === REDACTED ? true : value === 'x' ? false : undefined
      if (verdict !== undefined && redacts.size < MAX_RECORD_KEYS) redacts.set(key, verdict)
    }
    return verdict
  }
  const clean = (record: CompletionRecord, key: string, verdict: boolean): unknown => {
    const value = record[key as keyof CompletionRecord]
    return verdict ? REDACTED : typeof value === 'string' ? sanitize(value) : value
  }
  return (record) => {
    let keys = 0
    let changed = false
    for (const key in record) {
      const verdict = redactsKey(key)
      if (verdict === undefined || ++keys > MAX_RECORD_KEYS) return whole(record)
      if (!changed) changed = clean(record, key, verdict) !== record[key as keyof CompletionRecord]
    }
    // Nothing to redact or cut (the usual line): the record itself, not a copy of it, per request.
    if (!changed) return record as unknown as Record<string, unknown>
    const line: Record<string, unknown> = {}
    for (const key in record) line[key] = clean(record, key, redactsKey(key)!)
    return line
  }
}

export function createCompletionLog (options: CompletionLogOptions): CompletionLog {
  const { logger, sanitize, metrics, now } = options
  const listeners = options.listeners ?? []
  const lineOf = createLineSanitizer(sanitize)
  return {
    track: (ctx, req, res) => {
      metrics?.track(ctx, res)
      // `on`, not `once`: a response closes once (Node guards it), and once() allocates a wrapper per request.
      res.on('close', () => {
        const record = completionRecord(ctx, req, res, now())
        logger.info(lineOf(record), 'request completed')
        metrics?.observe(record)
        for (const listener of listeners) listener(record)
      })
    }
  }
}
