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
import type { Sanitizer } from '../../../common/src/sanitize.js'
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
}

export interface CompletionLog {
  /** Starts following one `/v1/ai/*` request: in flight now, one line (and one metrics record) when its response closes. */
  track: (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => void
}

export function createCompletionLog (options: CompletionLogOptions): CompletionLog {
  const { logger, sanitize, metrics, now } = options
  return {
    track: (ctx, req, res) => {
      metrics?.track(ctx, res)
      res.once('close', () => {
        const record = completionRecord(ctx, req, res, now())
        logger.info(sanitize(record) as Record<string, unknown>, 'request completed')
        metrics?.observe(record)
      })
    }
  }
}
