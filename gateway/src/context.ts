/**
 * The per-request context: created when a request arrives, filled in by the
 * pipeline stages in order, read once by the completion log when the
 * response closes. Stages share what they learnt through it, never through
 * the request object.
 */
import type { IncomingMessage } from 'node:http'
import { requestIdFrom, traceContextFrom, type TraceContext } from '../../common/src/request-context.js'
import type { ApiError } from '../../common/src/errors.js'

/** The two proxied routes and the usage read (also the `route` label of the completion log). */
export type AiRoute = '/v1/ai/generate' | '/v1/ai/chat' | '/v1/ai/usage'

export interface RequestBody {
  /** The bytes the client sent: what upstream-ai receives, unchanged. */
  raw: Buffer
  /** The same bytes parsed; stages read it, nobody re-serialises it. */
  json: Record<string, unknown>
}

export interface RequestContext {
  /** The client's sane `X-Request-Id`, or a generated one. */
  readonly requestId: string
  /** The caller's trace continued with the gateway's own span, or a new trace. */
  readonly trace: TraceContext
  readonly method: string
  /** Monotonic time (ms) the request arrived. */
  readonly receivedAt: number
  /** The matched AI route; undefined for 404s and non-AI paths. */
  route: AiRoute | undefined
  /** The verified user (identity stage). */
  userId: string | undefined
  /** The validated JSON body (body stage). */
  body: RequestBody | undefined
  /** `use_case` from the body; `chat` for a chat body that names none. */
  useCase: string | undefined
  /** Expected from the body until upstream answers, then whether the answer is `text/event-stream`. */
  stream: boolean
  /** Monotonic times of the upstream call (proxy stage). */
  upstream: { startedAt: number | undefined; endedAt: number | undefined }
  /** The rate-limit stage refused the request (429). */
  rateLimited: boolean
  /** The answer came from the response cache. */
  cached: boolean
  /**
   * The answer came from another request's upstream call (cache coalescing):
   * upstream-ai was called once for all of them, by a request whose `collapsed` is false.
   */
  collapsed: boolean
  /**
   * The upstream's `usage.total_tokens` (from the JSON answer or the stream's `done` event); undefined when unknown.
   * With token budgets on, a stream keeps a running estimate here until its `done` event (promptTokens +
   * ceil(delta text characters / 4), see pipeline/usage.ts), so a stream cut short reports what it used.
   */
  tokensUsed: number | undefined
  /** The prompt's token estimate, set when a token reservation was made (rate-limit stage); undefined otherwise. */
  promptTokens: number | undefined
  /** How the exchange ended, beyond the status code. */
  outcome: {
    /** The error type the client was told about (answer, `event: error`, or the upstream's envelope). */
    errorType: string | undefined
    /** The gateway itself cut the response after its headers were sent: not a client abort. */
    cutByGateway: boolean
  }
  /**
   * Set by the stage that owns the response while it runs (the proxy), so
   * shutdown can end it cleanly at the end of the grace period.
   */
  abort: ((error: ApiError) => void) | undefined
}

export function createContext (req: IncomingMessage, receivedAt: number): RequestContext {
  return {
    requestId: requestIdFrom(req.headers['x-request-id']),
    trace: traceContextFrom(req.headers.traceparent),
    method: req.method ?? 'GET',
    receivedAt,
    route: undefined,
    userId: undefined,
    body: undefined,
    useCase: undefined,
    stream: false,
    upstream: { startedAt: undefined, endedAt: undefined },
    rateLimited: false,
    cached: false,
    collapsed: false,
    tokensUsed: undefined,
    promptTokens: undefined,
    outcome: { errorType: undefined, cutByGateway: false },
    abort: undefined
  }
}
