/**
 * The error registry: every error type either service answers with, its HTTP
 * status and a default message. Errors become HTTP answers in one place
 * (`http.ts#sendError`), always in the same envelope:
 * `{"error": {"type", "message", ...extra}, "meta": {"request_id", "trace_id"?}}`.
 * Each type is documented in docs/api.md; a test keeps the two in step.
 */
export const ERROR_TYPES = {
  INVALID_REQUEST: { status: 400, message: 'The request is invalid.' },
  UNKNOWN_USE_CASE: { status: 400, message: 'Unknown use_case.' },
  UNAUTHORIZED: { status: 401, message: 'Authentication is required.' },
  NOT_FOUND: { status: 404, message: 'No such route.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed on this route.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request body must be application/json.' },
  RATE_LIMIT_EXCEEDED: { status: 429, message: 'Too many requests.' },
  TOKEN_BUDGET_EXCEEDED: { status: 429, message: 'The token budget is spent.' },
  INTERNAL_ERROR: { status: 500, message: 'An internal error occurred.' },
  PROVIDER_ERROR: { status: 502, message: 'The AI provider failed to answer.' },
  UPSTREAM_UNAVAILABLE: { status: 502, message: 'The AI service is unavailable.' },
  PROVIDER_RATE_LIMITED: { status: 503, message: 'The AI provider is rate limiting requests.' },
  SERVICE_UNAVAILABLE: { status: 503, message: 'The service is shutting down.' },
  RATE_LIMITER_UNAVAILABLE: { status: 503, message: 'The rate limiter is unavailable; retry later.' },
  UPSTREAM_OVERLOADED: { status: 503, message: 'Too many requests are waiting on the AI service; retry shortly.' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'The AI service did not answer in time.' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorType = keyof typeof ERROR_TYPES

/** Extra fields some error types add inside `error` (e.g. `retry_after_ms`). */
export type ErrorExtra = Record<string, string | number | boolean>

export class ApiError extends Error {
  readonly type: ErrorType
  readonly status: number
  readonly extra: ErrorExtra | undefined
  /** Response headers this error needs (e.g. `Allow`, `Retry-After`). */
  readonly headers: Record<string, string> | undefined

  constructor (
    type: ErrorType,
    message: string = ERROR_TYPES[type].message,
    options: { extra?: ErrorExtra; headers?: Record<string, string>; cause?: unknown } = {}
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ApiError'
    this.type = type
    this.status = ERROR_TYPES[type].status
    this.extra = options.extra
    this.headers = options.headers
  }
}

export interface EnvelopeMeta {
  request_id: string
  trace_id?: string
}

export interface ErrorEnvelope {
  error: { type: string; message: string } & ErrorExtra
  meta: EnvelopeMeta
}

export function errorEnvelope (error: ApiError, meta: EnvelopeMeta): ErrorEnvelope {
  return { error: { type: error.type, message: error.message, ...error.extra }, meta }
}

/** Anything thrown that is not an ApiError is an internal error; its message is never shown. */
export function toApiError (error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError('INTERNAL_ERROR', undefined, { cause: error })
}
