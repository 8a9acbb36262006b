/**
 * The HTTP server: routing, the one error boundary, the completion log line,
 * and draining for shutdown. Everything it uses comes in through
 * `buildServer(deps)`; it never listens by itself.
 */
import { randomUUID } from 'node:crypto'
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { ApiError, errorEnvelope, toApiError } from '../../common/src/errors.js'
import { sendError } from '../../common/src/http.js'
import type { Logger } from '../../common/src/logger.js'
import { describeError, type Sanitizer } from '../../common/src/sanitize.js'
import { createPromptRegistry, type PromptRegistry } from './prompts.js'
import type { Provider } from './providers/provider.js'
import { createRequestScope, errorMeta, type RequestScope } from './request-scope.js'
import type { AiRouteDeps } from './routes/ai-route.js'
import { handleChat } from './routes/chat.js'
import { recordFailure } from './routes/failure.js'
import { handleGenerate } from './routes/generate.js'
import { handleHealth, handleLive } from './routes/health.js'

export interface ServerDeps {
  provider: Provider
  logger: Logger
  sanitize: Sanitizer
  /** Largest accepted request body, in bytes. */
  maxBodyBytes: number
  /** @default the built-in templates */
  prompts?: PromptRegistry
  /** Monotonic milliseconds. @default performance.now */
  clock?: () => number
}

export interface UpstreamAiServer {
  server: Server
  /** From now on AI routes answer 503 SERVICE_UNAVAILABLE and /health says unhealthy. */
  startDraining: () => void
  /** Requests being handled right now. */
  inFlight: () => number
  /** Resolves once no request is in flight. */
  idle: () => Promise<void>
}

type Handler = (scope: RequestScope) => void | Promise<void>

interface Route {
  methods: ReadonlyMap<string, Handler>
  /** AI routes refuse new work while draining; health routes keep answering. */
  refusedWhileDraining: boolean
  /** Probes are frequent: their completion line is logged at debug. */
  isProbe: boolean
}

export function buildServer (deps: ServerDeps): UpstreamAiServer {
  const { provider, logger, sanitize } = deps
  const clock = deps.clock ?? (() => performance.now())
  const startedAt = clock()
  const aiDeps: AiRouteDeps = {
    provider,
    prompts: deps.prompts ?? createPromptRegistry(),
    maxBodyBytes: deps.maxBodyBytes,
    sanitize
  }
  let draining = false
  let inFlight = 0
  let idleWaiters: Array<() => void> = []

  const health: Handler = (scope) => handleHealth({
    provider,
    isDraining: () => draining,
    uptimeSeconds: () => Math.floor((clock() - startedAt) / 1000)
  }, scope)
  const routes = new Map<string, Route>([
    ['/v1/ai/generate', { methods: new Map([['POST', (scope) => handleGenerate(aiDeps, scope)]]), refusedWhileDraining: true, isProbe: false }],
    ['/v1/ai/chat', { methods: new Map([['POST', (scope) => handleChat(aiDeps, scope)]]), refusedWhileDraining: true, isProbe: false }],
    ['/health', { methods: new Map([['GET', health], ['HEAD', health]]), refusedWhileDraining: false, isProbe: true }],
    ['/health/live', { methods: new Map([['GET', handleLive], ['HEAD', handleLive]]), refusedWhileDraining: false, isProbe: true }]
  ])

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = pathOf(req.url)
    const route = routes.get(path)
    const scope = createRequestScope(req, res, { clock, sanitize, route: path })
    res.setHeader('x-request-id', scope.requestId)
    try {
      if (route === undefined) throw new ApiError('NOT_FOUND', `No route ${path.length > 200 ? `${path.slice(0, 200)}…` : path}.`)
      const handler = route.methods.get(req.method ?? '')
      if (handler === undefined) {
        const allow = [...route.methods.keys()].join(', ')
        throw new ApiError('METHOD_NOT_ALLOWED', `${req.method ?? ''} is not allowed on ${path}; allowed: ${allow}.`, { headers: { allow } })
      }
      if (route.refusedWhileDraining && draining) {
        throw new ApiError('SERVICE_UNAVAILABLE', undefined, { headers: { connection: 'close' } })
      }
      await handler(scope)
    } catch (error) {
      const apiError = toApiError(error)
      if (scope.signal.aborted) {
        // The client is gone: there is nobody to answer.
        res.destroy()
      } else {
        recordFailure(scope, apiError)
        sendError(res, apiError, errorMeta(scope))
      }
    } finally {
      logCompletion(scope, route?.isProbe ?? false)
    }
  }

  const logCompletion = (scope: RequestScope, isProbe: boolean): void => {
    const { res, log } = scope
    // 499, as nginx logs it (and as the gateway does): the client left before its answer was complete.
    log.http_status = log.client_aborted || !res.headersSent ? 499 : res.statusCode
    log.status = log.http_status < 400 && log.error_type === undefined ? 'success' : 'error'
    log.latency_ms = scope.elapsedMs()
    const { startedAt, endedAt } = scope.provider
    log.upstream_latency_ms = startedAt === undefined ? null : Math.round((endedAt ?? scope.now()) - startedAt)
    if (scope.internalCause !== undefined) {
      logger.error({ request_id: log.request_id, trace_id: log.trace_id, err: describeError(scope.internalCause, sanitize) }, 'request failed')
    }
    // The whole line goes through the sanitizer once more: nothing request-derived escapes it.
    const line = sanitize(log) as Record<string, unknown>
    if (isProbe) logger.debug(line, 'request completed')
    else logger.info(line, 'request completed')
  }

  const server = createServer((req, res) => {
    inFlight++
    handle(req, res)
      .catch((error: unknown) => {
        // The boundary above should make this unreachable; never let a request take the process down.
        logger.error({ err: describeError(error, sanitize) }, 'request handler failed')
        if (!res.headersSent) res.destroy()
      })
      .finally(() => {
        inFlight--
        if (inFlight === 0) {
          const waiters = idleWaiters
          idleWaiters = []
          for (const resolve of waiters) resolve()
        }
      })
  })

  // Unparsable HTTP never reaches a handler: answer in the same envelope, then close.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    const apiError = error.code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError('PAYLOAD_TOO_LARGE', 'The request headers are too large.')
      : new ApiError('INVALID_REQUEST', 'The request is not valid HTTP.')
    const body = JSON.stringify(errorEnvelope(apiError, { request_id: randomUUID() }))
    socket.end(`HTTP/1.1 ${apiError.status} ${STATUS_CODES[apiError.status] ?? ''}\r\n` +
      `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  })

  return {
    server,
    startDraining: () => { draining = true },
    inFlight: () => inFlight,
    idle: async () => {
      if (inFlight === 0) return
      await new Promise<void>((resolve) => idleWaiters.push(resolve))
    }
  }
}

function pathOf (url: string | undefined): string {
  const raw = url ?? '/'
  const query = raw.indexOf('?')
  return query === -1 ? raw : raw.slice(0, query)
}
