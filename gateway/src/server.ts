/**
 * The gateway's HTTP server: routing, the per-request context, and the one
 * error boundary where every refusal becomes the error envelope. It never
 * listens by itself (main does), so tests and main wire it the same way.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { ApiError, toApiError } from '../../common/src/errors.js'
import { sendError, sendJson } from '../../common/src/http.js'
import type { Logger } from '../../common/src/logger.js'
import { describeError, type Sanitizer } from '../../common/src/sanitize.js'
import { createContext, type AiRoute, type RequestContext } from './context.js'
import type { Health } from './health.js'
import { ClientGoneError } from '../../common/src/http.js'
import { answerMetrics, type Metrics } from './metrics.js'
import type { CompletionLog } from './pipeline/completion-log.js'
import { runPipeline, type NamedStage } from './pipeline/stage.js'
import { drainingError, type Drain } from './shutdown.js'
import { USAGE_PATH, type UsageRoute } from './usage/route.js'

interface RouteBase {
  /** The `Allow` header value. */
  allow: string
  methods: ReadonlySet<string>
}
type Route =
  | RouteBase & { kind: 'ai'; path: AiRoute }
  | RouteBase & { kind: 'health' | 'ready' | 'live' | 'metrics' | 'usage' }

const POST = { allow: 'POST', methods: new Set(['POST']) }
const GET = { allow: 'GET, HEAD', methods: new Set(['GET', 'HEAD']) }

/** Exact paths only: `/v1/ai/chat/` or `/v1/ai//chat` are other paths (404). */
const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ['/v1/ai/generate', { kind: 'ai', path: '/v1/ai/generate', ...POST }],
  ['/v1/ai/chat', { kind: 'ai', path: '/v1/ai/chat', ...POST }],
  [USAGE_PATH, { kind: 'usage', allow: 'GET', methods: new Set(['GET']) }],
  ['/health', { kind: 'health', ...GET }],
  ['/health/ready', { kind: 'ready', ...GET }],
  ['/health/live', { kind: 'live', ...GET }],
  ['/metrics', { kind: 'metrics', ...GET }]
])

const AI_PREFIX = '/v1/ai/'

function pathOf (url: string | undefined): string {
  if (url === undefined) return '/'
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/** The request announced a body that has not fully arrived. */
function bodyPending (req: IncomingMessage): boolean {
  if (req.complete) return false
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

export interface ServerOptions {
  /** The `/v1/ai/*` stages, in order (see pipeline/index.ts). */
  pipeline: readonly NamedStage[]
  health: Health
  drain: Drain
  logger: Logger
  /** The service's sanitizer, for every log line that carries request data. */
  sanitize: Sanitizer
  /** The one `request completed` line (and metrics record) per `/v1/ai/*` request. */
  completionLog: CompletionLog
  /** `GET /v1/ai/usage` (usage/route.ts); undefined: that path is 404. @default undefined */
  usage?: UsageRoute | undefined
  /** Serve `GET /metrics` from these on this server; undefined when they have their own port (then `/metrics` is 404 here). @default undefined */
  metrics?: Metrics | undefined
  /** Monotonic clock, in ms. */
  now: () => number
  /** Node's slow-client limits, in ms (server.headersTimeout / requestTimeout). */
  headersTimeoutMs: number
  requestTimeoutMs: number
  keepAliveTimeoutMs: number
}

export function buildServer (options: ServerOptions): Server {
  const { pipeline, health, drain, logger, sanitize, completionLog, metrics, now, usage } = options

  /** The error boundary: every refusal, from any stage, is answered here. */
  const answerError = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse, thrown: unknown): void => {
    if (thrown instanceof ClientGoneError) return
    const error = toApiError(thrown)
    if (error.type === 'INTERNAL_ERROR') {
      logger.error({ err: describeError(error.cause, sanitize), request_id: ctx.requestId, trace_id: ctx.trace.traceId }, 'internal error')
    }
    ctx.outcome.errorType = error.type
    if (res.destroyed || res.writableEnded) return
    if (res.headersSent) {
      // Nothing valid can follow half an answer: cut it so the client does not hang.
      ctx.outcome.cutByGateway = true
      res.destroy()
      return
    }
    // A body left unread (refused before or while reading) is not worth draining from this client.
    if (bodyPending(req)) res.setHeader('connection', 'close')
    sendError(res, error, { request_id: ctx.requestId, trace_id: ctx.trace.traceId })
  }

  /** Health and metrics: answered by the gateway itself, never through the pipeline. */
  const answerOwnRoute = async (route: Route, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (route.kind === 'live') {
      sendJson(res, 200, { status: 'alive' }, { 'cache-control': 'no-store' })
      return
    }
    if (route.kind === 'metrics' && metrics !== undefined) {
      await answerMetrics(metrics, req, res)
      return
    }
    const report = await health.report()
    sendJson(res, report.httpStatus, report.body, { 'cache-control': 'no-store' })
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const ctx = createContext(req, now())
    res.setHeader('x-request-id', ctx.requestId)
    // While draining, every connection is closed after its answer so clients move on.
    if (drain.draining) res.setHeader('connection', 'close')
    drain.track(ctx, res)
    const path = pathOf(req.url)
    const found = ROUTES.get(path)
    // With its own port (AI_GATEWAY_METRICS_PORT), /metrics is not a route here.
    const route = (found?.kind === 'metrics' && metrics === undefined) || (found?.kind === 'usage' && usage === undefined) ? undefined : found
    if (path.startsWith(AI_PREFIX)) {
      if (route?.kind === 'ai') ctx.route = route.path
      else if (route?.kind === 'usage') ctx.route = USAGE_PATH
      completionLog.track(ctx, req, res)
    }
    try {
      if (route === undefined) throw new ApiError('NOT_FOUND')
      if (!route.methods.has(ctx.method)) {
        throw new ApiError('METHOD_NOT_ALLOWED', `Use ${route.allow} on this route.`, { headers: { allow: route.allow } })
      }
      if (route.kind === 'usage' && usage !== undefined) {
        if (drain.draining) throw drainingError()
        await usage(ctx, req, res)
        return
      }
      if (route.kind !== 'ai') {
        await answerOwnRoute(route, req, res)
        return
      }
      if (drain.draining) throw drainingError()
      await runPipeline(pipeline, ctx, req, res)
    } catch (error) {
      answerError(ctx, req, res, error)
    }
  }

  const server = createServer({
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    // Node checks both timeouts on this period (30 s by default): check often enough to honour them.
    connectionsCheckingInterval: Math.min(1000, options.headersTimeoutMs / 2)
  }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      // The boundary itself failed (a bug): never leave the client hanging.
      logger.error({ err: describeError(error, sanitize) }, 'request handler failed')
      res.destroy()
    })
  })
  server.keepAliveTimeout = options.keepAliveTimeoutMs
  return server
}
