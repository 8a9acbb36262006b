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

/**
 * The `request completed` line, with the gateway's field names where they
 * mean the same (docs/observability.md). Request-derived values are
 * sanitised before they land here, and the whole line once more when logged.
 */
export interface CompletionLog {
  request_id: string
  trace_id: string
  user_id: unknown
  method: unknown
  route: unknown
  /** From the body; `chat` for a chat body that names none; null until read. */
  use_case: unknown
  provider?: string
  model?: string
  stream: boolean
  /** The provider's `usage.total_tokens`; null when unknown. */
  tokens_used: number | null
  http_status?: number
  /** `success`, or `error` (a status of 400 or more, an error event, or a client that left). */
  status?: 'success' | 'error'
  latency_ms?: number
  /** Time spent on the provider call, in ms; null when none was made. */
  upstream_latency_ms?: number | null
  /** upstream-ai has no cache nor rate limiter: always false, kept so both services' lines share one schema. */
  cached: false
  rate_limited: false
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
  /** Monotonic times (ms) of the provider call: started when the request to it is built, ended at its answer, its `done` or its failure. */
  provider: { startedAt: number | undefined; endedAt: number | undefined }
  /** Monotonic clock, in ms. */
  now: () => number
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
    use_case: null,
    stream: false,
    tokens_used: null,
    cached: false,
    rate_limited: false,
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
    log,
    provider: { startedAt: undefined, endedAt: undefined },
    now: deps.clock
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

/** The provider call is about to start. */
export function recordProviderStart (scope: RequestScope): void {
  scope.provider.startedAt = scope.now()
}

/** The provider call ended (answer, `done`, or failure); the first end counts. */
export function recordProviderEnd (scope: RequestScope): void {
  if (scope.provider.startedAt !== undefined) scope.provider.endedAt ??= scope.now()
}

export function recordUsage (scope: RequestScope, usage: Usage, model: string): void {
  recordProviderEnd(scope)
  scope.log.tokens_used = usage.total_tokens
  scope.log.model = model
}
