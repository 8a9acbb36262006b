/**
 * What one request carries through the handlers: its ids, the signal that
 * aborts when the client goes away, its clock, and the fields of its
 * completion log line (filled in as the request goes).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { requestIdFrom, traceContextFrom, type TraceContext } from '../../common/src/request-context.js'
import type { EnvelopeMeta } from '../../common/src/errors.js'
import type { Sanitizer } from '../../common/src/sanitize.js'
import type { Usage } from './providers/provider.js'

/** The `request completed` line. Request-derived values are sanitised before they land here. */
export interface CompletionLog {
  request_id: string
  trace_id: string
  user_id: unknown
  method: unknown
  route: unknown
  use_case?: unknown
  provider?: string
  model?: string
  stream?: boolean
  tokens_used?: number
  http_status?: number
  latency_ms?: number
  client_aborted: boolean
  error_type?: string
  provider_status?: number
  provider_error_code?: string
  network_error_code?: string
}

export interface RequestScope {
  req: IncomingMessage
  res: ServerResponse
  requestId: string
  trace: TraceContext
  /** Aborts when the client disconnects before its answer is complete. */
  signal: AbortSignal
  elapsedMs: () => number
  log: CompletionLog
  /** What an INTERNAL_ERROR was caused by; logged (sanitised) apart from the completion line. */
  internalCause?: unknown
}

/** The `meta` of a successful answer (JSON body or the stream's `done`). */
export interface AnswerMeta {
  request_id: string
  trace_id: string
  provider: string
  model: string
  use_case: string
  latency_ms: number
  cached: false
}

export function createRequestScope (
  req: IncomingMessage,
  res: ServerResponse,
  deps: { clock: () => number; sanitize: Sanitizer; route: string }
): RequestScope {
  const startedAt = deps.clock()
  const requestId = requestIdFrom(req.headers['x-request-id'])
  const trace = traceContextFrom(req.headers.traceparent)
  const controller = new AbortController()
  const log: CompletionLog = {
    request_id: requestId,
    trace_id: trace.traceId,
    user_id: deps.sanitize(req.headers['x-user-id']) ?? null,
    method: deps.sanitize(req.method),
    route: deps.sanitize(deps.route),
    client_aborted: false
  }
  // 'close' before the answer finished: the client went away. Abort its provider call.
  res.once('close', () => {
    if (!res.writableFinished) {
      log.client_aborted = true
      controller.abort(new Error('client disconnected'))
    }
  })
  return {
    req,
    res,
    requestId,
    trace,
    signal: controller.signal,
    elapsedMs: () => Math.round(deps.clock() - startedAt),
    log
  }
}

export function errorMeta (scope: RequestScope): EnvelopeMeta {
  return { request_id: scope.requestId, trace_id: scope.trace.traceId }
}

export function answerMeta (scope: RequestScope, fields: { provider: string; model: string; useCase: string }): AnswerMeta {
  return {
    request_id: scope.requestId,
    trace_id: scope.trace.traceId,
    provider: fields.provider,
    model: fields.model,
    use_case: fields.useCase,
    latency_ms: scope.elapsedMs(),
    cached: false
  }
}

export function recordUsage (scope: RequestScope, usage: Usage, model: string): void {
  scope.log.tokens_used = usage.total_tokens
  scope.log.model = model
}
