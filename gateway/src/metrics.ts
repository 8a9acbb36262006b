/**
 * Prometheus metrics (prom-client). Each process creates one Registry and
 * injects it: nothing lands in prom-client's global default registry, so
 * tests that build several gateways in one process never share counters.
 *
 * Request metrics are recorded from the completion record, in the same place
 * as the completion log line (pipeline/completion-log.ts), so a log line and
 * the counters can never disagree. Gauges that describe the present (in
 * flight, open streams, Redis fallbacks) are computed when Prometheus
 * scrapes, from the requests being tracked and from getter functions, so
 * they cannot drift.
 *
 * Label values are bounded: routes are the two AI routes or `unmatched`;
 * error types come from the error registries (a cap guards against a
 * misbehaving upstream); `use_case`, user ids and other request data are
 * never labels.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { ApiError } from '../../common/src/errors.js'
import { sendError } from '../../common/src/http.js'
import { requestIdFrom } from '../../common/src/request-context.js'
import type { RequestContext } from './context.js'
import { InFlight } from './in-flight.js'
import type { CompletionRecord } from './pipeline/completion-log.js'

/** What a getter says about the rate limiter: `fallback` means Redis is configured but unavailable. */
export type LimiterState = 'disabled' | 'memory' | 'redis' | 'fallback'
/** Where the cache reads and writes now (the failover store's `mode`). */
export type CacheMode = 'redis' | 'memory'

export interface MetricsOptions {
  /** The process's registry. @default a new Registry */
  registry?: Registry
  /** Also collect prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`) into the registry. @default false */
  defaultMetrics?: boolean
  /** The rate limiter's state now (its `state()`). @default undefined (reported as not on fallback) */
  limiterState?: (() => LimiterState | string) | undefined
  /** The cache store's mode now (the failover store's `mode`). @default undefined (reported as not on fallback) */
  cacheMode?: (() => CacheMode | string) | undefined
  /** REDIS_URL is set: only then is a cache on memory a fallback (without Redis, memory is the design). @default false */
  redisConfigured?: boolean
  /** Token reservations whose settle failed so far (the rate limiter's `settleFailures()`). @default undefined (reported as 0) */
  tokenSettleFailures?: (() => number) | undefined
}

export interface Metrics {
  readonly registry: Registry
  /** Counts a `/v1/ai/*` request as in flight (and, once its answer is an event stream, as an open stream) until its response closes. */
  track: (ctx: RequestContext, res: ServerResponse) => void
  /** Records one finished request: called once per completion record, next to its log line. */
  observe: (record: CompletionRecord) => void
  /** Counts one Redis error (`source`: connection, health_probe, rate_limiter, cache). */
  redisError: (source: string) => void
  /** The exposition text and its content type. */
  scrape: () => Promise<{ contentType: string; body: string }>
}

/** Request latencies, in seconds: from a cache hit (ms) to a long stream (minutes). */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

/** Most distinct `error_type` label values; the rest are counted as `other`. */
const MAX_ERROR_TYPES = 64

type LabelValue = string | number | boolean

/**
 * prom-client children by label values, each made once: a request then
 * records through its child, without a labels object (and, for a histogram,
 * a closure) built per call. Keyed by nested Maps on the raw values, so a
 * lookup allocates nothing. As bounded as the label sets themselves.
 */
class Children<T> {
  readonly #root = new Map<LabelValue, unknown>()
  readonly #make: (values: LabelValue[]) => T
  readonly #depth: number

  constructor (depth: number, make: (values: LabelValue[]) => T) {
    this.#depth = depth
    this.#make = make
  }

  get (a: LabelValue, b: LabelValue = '', c: LabelValue = ''): T {
    const first = this.#root.get(a) as Map<LabelValue, unknown> | T | undefined
    if (this.#depth === 1) return (first as T | undefined) ?? this.#add([a])
    const second = (first as Map<LabelValue, unknown> | undefined)?.get(b) as Map<LabelValue, unknown> | T | undefined
    if (this.#depth === 2) return (second as T | undefined) ?? this.#add([a, b])
    return ((second as Map<LabelValue, unknown> | undefined)?.get(c) as T | undefined) ?? this.#add([a, b, c])
  }

  #add (values: LabelValue[]): T {
    const child = this.#make(values)
    let level = this.#root
    for (let i = 0; i < values.length - 1; i++) {
      let next = level.get(values[i]!) as Map<LabelValue, unknown> | undefined
      if (next === undefined) {
        next = new Map()
        level.set(values[i]!, next)
      }
      level = next
    }
    level.set(values[values.length - 1]!, child)
    return child
  }
}

export function createMetrics (options: MetricsOptions = {}): Metrics {
  const registry = options.registry ?? new Registry()
  const registers = [registry]
  if (options.defaultMetrics === true) collectDefaultMetrics({ register: registry })

  // Not a Map keyed by request: see InFlight (a per-request Map key got every request promoted by the GC).
  const tracked = new InFlight<{ ctx: RequestContext; res: ServerResponse }>()

  const requests = new Counter({
    name: 'ai_gateway_requests_total',
    help: '/v1/ai/* requests by route, HTTP status code and outcome (success, error, rate_limited).',
    labelNames: ['route', 'code', 'outcome'] as const,
    registers
  })
  const requestDuration = new Histogram({
    name: 'ai_gateway_request_duration_seconds',
    help: '/v1/ai/* request duration, from arrival to the response closing (a whole stream for streams).',
    labelNames: ['route', 'outcome', 'stream'] as const,
    buckets: REQUEST_BUCKETS,
    registers
  })
  const upstreamDuration = new Histogram({
    name: 'ai_gateway_upstream_duration_seconds',
    help: 'Duration of the call to upstream-ai, from its start to the end (or failure) of the answer; requests that did not call upstream-ai are not observed.',
    labelNames: ['route', 'stream'] as const,
    buckets: REQUEST_BUCKETS,
    registers
  })
  const errors = new Counter({
    name: 'ai_gateway_errors_total',
    help: '/v1/ai/* requests that ended with an error, by route and error type.',
    labelNames: ['route', 'error_type'] as const,
    registers
  })
  const rateLimited = new Counter({
    name: 'ai_gateway_rate_limited_total',
    help: '/v1/ai/* requests refused by the rate limiter (429).',
    labelNames: ['route'] as const,
    registers
  })
  const cacheRequests = new Counter({
    name: 'ai_gateway_cache_requests_total',
    help: 'Cache decisions on /v1/ai/* requests, from X-Cache: hit, miss or bypass.',
    labelNames: ['result'] as const,
    registers
  })
  const tokens = new Counter({
    name: 'ai_gateway_tokens_total',
    help: 'Tokens (usage.total_tokens) of the answers sent, by route and source: upstream (this request\'s own upstream-ai call) or cache (a cache hit, or an answer shared from another request\'s call).',
    labelNames: ['route', 'source'] as const,
    registers
  })
  const redisErrors = new Counter({
    name: 'ai_gateway_redis_errors_total',
    help: 'Redis errors, by source (connection: the client\'s error events; health_probe: a failed PING; rate_limiter, cache: each of their Redis calls that failed or passed its deadline).',
    labelNames: ['source'] as const,
    registers
  })
  const tokenBudgetDenied = new Counter({
    name: 'ai_gateway_token_budget_denied_total',
    help: '/v1/ai/* requests refused because their token estimate did not fit a token budget (429 TOKEN_BUDGET_EXCEEDED; also counted in ai_gateway_rate_limited_total).',
    labelNames: ['route'] as const,
    registers
  })
  const tokenSettleFailures = options.tokenSettleFailures
  let settleFailuresSeen = 0
  new Counter({
    name: 'ai_gateway_token_settle_failures_total',
    help: 'Token reservations whose settle failed (Redis unavailable or too slow); each keeps its estimate until it leaves its window.',
    registers,
    collect () {
      // The limiter counts; the scrape adds what it counted since the last one.
      const now = tokenSettleFailures?.() ?? 0
      if (now > settleFailuresSeen) this.inc(now - settleFailuresSeen)
      settleFailuresSeen = now
    }
  })
  // Present at 0 from the start, so dashboards and alerts see the series before the first request.
  for (const route of ['/v1/ai/generate', '/v1/ai/chat']) rateLimited.inc({ route }, 0)
  for (const route of ['/v1/ai/generate', '/v1/ai/chat']) tokenBudgetDenied.inc({ route }, 0)
  for (const result of ['hit', 'miss', 'bypass']) cacheRequests.inc({ result }, 0)
  for (const source of ['connection', 'rate_limiter', 'cache']) redisErrors.inc({ source }, 0)

  new Gauge({
    name: 'ai_gateway_requests_in_flight',
    help: '/v1/ai/* requests being handled now.',
    registers,
    collect () { this.set(tracked.size) }
  })
  new Gauge({
    name: 'ai_gateway_streams_open',
    help: 'Event streams being relayed to clients now.',
    registers,
    collect () {
      let open = 0
      for (const { ctx, res } of tracked) if (ctx.stream && res.headersSent && !res.writableEnded) open++
      this.set(open)
    }
  })
  const limiterState = options.limiterState
  const cacheMode = options.cacheMode
  const redisConfigured = options.redisConfigured === true
  new Gauge({
    name: 'ai_gateway_redis_fallback',
    help: '1 while Redis is configured but unavailable and the component answers from its fallback (rate_limiter: its failure mode; cache: this instance\'s memory), else 0.',
    labelNames: ['component'] as const,
    registers,
    collect () {
      this.set({ component: 'rate_limiter' }, limiterState?.() === 'fallback' ? 1 : 0)
      this.set({ component: 'cache' }, redisConfigured && cacheMode?.() === 'memory' ? 1 : 0)
    }
  })

  const requestChildren = new Children(3, ([route, code, outcome]) => requests.labels({ route: String(route), code: String(code), outcome: String(outcome) }))
  const durationChildren = new Children(3, ([route, outcome, stream]) => requestDuration.labels({ route: String(route), outcome: String(outcome), stream: String(stream) }))
  const upstreamChildren = new Children(2, ([route, stream]) => upstreamDuration.labels({ route: String(route), stream: String(stream) }))
  const errorChildren = new Children(2, ([route, type]) => errors.labels({ route: String(route), error_type: String(type) }))
  const rateLimitedChildren = new Children(1, ([route]) => rateLimited.labels({ route: String(route) }))
  const cacheChildren = new Children(1, ([result]) => cacheRequests.labels({ result: String(result) }))
  const tokenChildren = new Children(2, ([route, source]) => tokens.labels({ route: String(route), source: String(source) }))

  const knownErrorTypes = new Set<string>()
  const errorLabel = (type: string): string => {
    if (knownErrorTypes.has(type)) return type
    if (knownErrorTypes.size >= MAX_ERROR_TYPES) return 'other'
    knownErrorTypes.add(type)
    return type
  }

  return {
    registry,
    track: (ctx, res) => {
      const slot = tracked.add({ ctx, res })
      // `on`, not `once`: a response closes once (Node guards it), and once() allocates a wrapper per request.
      res.on('close', () => { tracked.delete(slot) })
    },
    observe: (record) => {
      const { route, stream } = record
      requestChildren.get(route, record.http_status, record.status).inc()
      durationChildren.get(route, record.status, stream).observe(record.latency_ms / 1000)
      if (record.upstream_latency_ms !== null) upstreamChildren.get(route, stream).observe(record.upstream_latency_ms / 1000)
      if (record.error_type !== undefined) errorChildren.get(route, errorLabel(record.error_type)).inc()
      if (record.rate_limited) rateLimitedChildren.get(route).inc()
      if (record.error_type === 'TOKEN_BUDGET_EXCEEDED') tokenBudgetDenied.inc({ route })
      if (record.cache !== null) cacheChildren.get(record.cache).inc()
      if (record.tokens_used !== null && record.tokens_used > 0) {
        tokenChildren.get(route, record.cached || record.collapsed ? 'cache' : 'upstream').inc(record.tokens_used)
      }
    },
    redisError: (source) => { redisErrors.inc({ source }) },
    scrape: async () => ({ contentType: registry.contentType, body: await registry.metrics() })
  }
}

/** Answers `GET`/`HEAD /metrics` with the exposition text. */
export async function answerMetrics (metrics: Metrics, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { contentType, body } = await metrics.scrape()
  res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
  res.end(req.method === 'HEAD' ? undefined : body)
}

/**
 * The listener of AI_GATEWAY_METRICS_PORT: `GET /metrics` and nothing else
 * (404 NOT_FOUND, 405 METHOD_NOT_ALLOWED in the usual envelope). It never
 * listens by itself.
 */
export function createMetricsServer (metrics: Metrics, onError: (error: unknown) => void): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const meta = { request_id: requestIdFrom(req.headers['x-request-id']) }
    res.setHeader('x-request-id', meta.request_id)
    if (path !== '/metrics') {
      sendError(res, new ApiError('NOT_FOUND'), meta)
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new ApiError('METHOD_NOT_ALLOWED', 'Use GET, HEAD on this route.', { headers: { allow: 'GET, HEAD' } }), meta)
      return
    }
    answerMetrics(metrics, req, res).catch((error: unknown) => {
      onError(error)
      if (!res.headersSent) sendError(res, new ApiError('INTERNAL_ERROR'), meta)
      else res.destroy()
    })
  })
}
