/**
 * The completion log: exactly one `request completed` info line per
 * `/v1/ai/*` request, whatever the outcome, written when the response
 * closes. It carries identifiers, the route, the outcome and timings; never
 * a body, a token or a header value. (A first version: the observability
 * issue adds metrics from the same record.)
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../../../common/src/logger.js'
import type { RequestContext } from '../context.js'

/** nginx's "client closed request": the client left before its answer was complete. */
export const CLIENT_CLOSED_REQUEST = 499

export interface CompletionRecord {
  request_id: string
  trace_id: string
  user_id: string | null
  use_case: string | null
  /** The matched route, or `unmatched` (keeps the label set bounded). */
  route: string
  method: string
  http_status: number
  status: 'success' | 'error'
  error_type?: string
  latency_ms: number
  upstream_latency_ms: number | null
  stream: boolean
  client_aborted: boolean
}

const round = (ms: number): number => Math.round(ms * 100) / 100

export function completionRecord (ctx: RequestContext, req: IncomingMessage, res: ServerResponse, closedAt: number): CompletionRecord {
  // Node answered 408 itself and closed the socket: a slow client, not one that left.
  const requestTimedOut = (req.socket as { errored?: { code?: string } | null } | null)?.errored?.code === 'ERR_HTTP_REQUEST_TIMEOUT'
  const clientAborted = !res.writableFinished && !ctx.outcome.cutByGateway && !requestTimedOut
  const httpStatus = clientAborted ? CLIENT_CLOSED_REQUEST : requestTimedOut ? 408 : res.statusCode
  const errorType = ctx.outcome.errorType ?? (requestTimedOut ? 'REQUEST_TIMEOUT' : undefined)
  const { startedAt, endedAt } = ctx.upstream
  return {
    request_id: ctx.requestId,
    trace_id: ctx.trace.traceId,
    user_id: ctx.userId ?? null,
    use_case: ctx.useCase ?? null,
    route: ctx.route ?? 'unmatched',
    method: ctx.method,
    http_status: httpStatus,
    status: httpStatus < 400 && errorType === undefined ? 'success' : 'error',
    ...(errorType === undefined ? {} : { error_type: errorType }),
    latency_ms: round(closedAt - ctx.receivedAt),
    upstream_latency_ms: startedAt === undefined ? null : round((endedAt ?? closedAt) - startedAt),
    stream: ctx.stream,
    client_aborted: clientAborted
  }
}

export function logCompletion (logger: Logger, ctx: RequestContext, req: IncomingMessage, res: ServerResponse, closedAt: number): void {
  logger.info(completionRecord(ctx, req, res, closedAt), 'request completed')
}
