// Metrics: one injected registry per instance (no shared global state), request counters, histograms, tokens, cache results and error types from completion records, gauges computed at scrape time (in flight, open streams, Redis fallbacks).
import t from 'tap'
import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import { Registry } from 'prom-client'
import type { RequestContext } from '../../src/context.js'
import { createMetrics } from '../../src/metrics.js'
import type { CompletionRecord } from '../../src/pipeline/completion-log.js'
import { completionRecord } from '../helpers/completion-record.js'

const record = (overrides: Partial<CompletionRecord> = {}): CompletionRecord => completionRecord({ request_id: 'r', trace_id: 't', user_id: 'u', latency_ms: 120, upstream_latency_ms: 100, tokens_used: 15, ...overrides })

async function value (registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = await registry.getSingleMetric(name)?.get()
  const matching = metric?.values.filter((entry) => Object.entries(labels).every(([key, wanted]) => String(entry.labels[key]) === wanted) &&
    (entry as { metricName?: string }).metricName !== `${name}_bucket` && (entry as { metricName?: string }).metricName !== `${name}_sum`)
  if (matching === undefined || matching.length === 0) return undefined
  return matching.reduce((sum, entry) => sum + entry.value, 0)
}

t.test('requests, latency, upstream latency, tokens, errors, rate limits and cache results come from the records', async (t) => {
  const registry = new Registry()
  const metrics = createMetrics({ registry })
  t.equal(metrics.registry, registry, 'the injected registry is used')
  metrics.observe(record())
  metrics.observe(record({ cache: 'hit', cached: true, upstream_latency_ms: null, tokens_used: 15 }))
  metrics.observe(record({ cache: 'miss', collapsed: true, tokens_used: 15 }))
  metrics.observe(record({ route: '/v1/ai/chat', stream: true, tokens_used: 40, cache: 'bypass' }))
  metrics.observe(record({ http_status: 429, status: 'rate_limited', error_type: 'RATE_LIMIT_EXCEEDED', rate_limited: true, upstream_latency_ms: null, tokens_used: null }))
  metrics.observe(record({ http_status: 502, status: 'error', error_type: 'UPSTREAM_UNAVAILABLE', tokens_used: null }))

  t.equal(await value(registry, 'ai_gateway_requests_total', { route: '/v1/ai/generate', code: '200', outcome: 'success' }), 3)
  t.equal(await value(registry, 'ai_gateway_requests_total', { code: '429', outcome: 'rate_limited' }), 1)
  t.equal(await value(registry, 'ai_gateway_requests_total', { code: '502', outcome: 'error' }), 1)
  t.equal(await value(registry, 'ai_gateway_requests_total'), 6)
  t.equal(await value(registry, 'ai_gateway_request_duration_seconds', { route: '/v1/ai/chat', stream: 'true' }), 1, 'one chat stream observed (count)')
  const text = (await metrics.scrape()).body
  t.match(text, /ai_gateway_request_duration_seconds_count\{route="\/v1\/ai\/generate",outcome="success",stream="false"\} 3/)
  t.match(text, /ai_gateway_upstream_duration_seconds_count\{route="\/v1\/ai\/generate",stream="false"\} 3/, 'requests that did not call upstream are not observed')
  t.match(text, /ai_gateway_upstream_duration_seconds_sum\{route="\/v1\/ai\/generate",stream="false"\} 0\.3/, 'in seconds')
  t.equal(await value(registry, 'ai_gateway_tokens_total', { route: '/v1/ai/generate', source: 'upstream' }), 15)
  t.equal(await value(registry, 'ai_gateway_tokens_total', { route: '/v1/ai/generate', source: 'cache' }), 30, 'hit and collapsed answers spent nothing new')
  t.equal(await value(registry, 'ai_gateway_tokens_total', { route: '/v1/ai/chat', source: 'upstream' }), 40)
  t.equal(await value(registry, 'ai_gateway_rate_limited_total', { route: '/v1/ai/generate' }), 1)
  t.equal(await value(registry, 'ai_gateway_rate_limited_total', { route: '/v1/ai/chat' }), 0, 'present at 0')
  t.equal(await value(registry, 'ai_gateway_cache_requests_total', { result: 'hit' }), 1)
  t.equal(await value(registry, 'ai_gateway_cache_requests_total', { result: 'miss' }), 1)
  t.equal(await value(registry, 'ai_gateway_cache_requests_total', { result: 'bypass' }), 1)
  t.equal(await value(registry, 'ai_gateway_errors_total', { error_type: 'UPSTREAM_UNAVAILABLE' }), 1)
  t.equal((await metrics.scrape()).contentType, registry.contentType)
})

t.test('two instances never share state, and the global registry stays empty', async (t) => {
  const { register } = await import('prom-client')
  const before = (await register.getMetricsAsJSON()).length
  const a = createMetrics()
  const b = createMetrics()
  a.observe(record())
  t.equal(await value(a.registry, 'ai_gateway_requests_total'), 1)
  t.equal(await value(b.registry, 'ai_gateway_requests_total'), undefined)
  t.equal((await register.getMetricsAsJSON()).length, before)
})

t.test('error_type labels are capped', async (t) => {
  const metrics = createMetrics()
  for (let i = 0; i < 100; i++) metrics.observe(record({ http_status: 500, status: 'error', error_type: `TYPE_${i}` }))
  const errors = await metrics.registry.getSingleMetric('ai_gateway_errors_total')!.get()
  t.ok(errors.values.length <= 65, `${errors.values.length} series`)
  t.ok(errors.values.some((entry) => entry.labels.error_type === 'other'))
})

t.test('in-flight and open-stream gauges follow tracked requests', async (t) => {
  const metrics = createMetrics()
  const fakeRes = (): ServerResponse & EventEmitter => Object.assign(new EventEmitter(), { headersSent: false, writableEnded: false }) as unknown as ServerResponse & EventEmitter
  const ctx = (stream: boolean): RequestContext => ({ stream }) as RequestContext
  const json = fakeRes()
  const stream = fakeRes()
  const streamCtx = ctx(true)
  metrics.track(ctx(false), json)
  metrics.track(streamCtx, stream)
  t.equal(await value(metrics.registry, 'ai_gateway_requests_in_flight'), 2)
  t.equal(await value(metrics.registry, 'ai_gateway_streams_open'), 0, 'a stream asked for but not started')
  ;(stream as { headersSent: boolean }).headersSent = true
  t.equal(await value(metrics.registry, 'ai_gateway_streams_open'), 1)
  stream.emit('close')
  json.emit('close')
  t.equal(await value(metrics.registry, 'ai_gateway_requests_in_flight'), 0)
  t.equal(await value(metrics.registry, 'ai_gateway_streams_open'), 0)
})

t.test('the fallback gauge reads the getters at scrape time', async (t) => {
  let limiter = 'redis'
  let cache = 'redis'
  const metrics = createMetrics({ limiterState: () => limiter, cacheMode: () => cache, redisConfigured: true })
  t.equal(await value(metrics.registry, 'ai_gateway_redis_fallback', { component: 'rate_limiter' }), 0)
  t.equal(await value(metrics.registry, 'ai_gateway_redis_fallback', { component: 'cache' }), 0)
  limiter = 'fallback'
  cache = 'memory'
  t.equal(await value(metrics.registry, 'ai_gateway_redis_fallback', { component: 'rate_limiter' }), 1)
  t.equal(await value(metrics.registry, 'ai_gateway_redis_fallback', { component: 'cache' }), 1)

  const noRedis = createMetrics({ limiterState: () => 'memory', cacheMode: () => 'memory', redisConfigured: false })
  t.equal(await value(noRedis.registry, 'ai_gateway_redis_fallback', { component: 'rate_limiter' }), 0, 'memory by design is no fallback')
  t.equal(await value(noRedis.registry, 'ai_gateway_redis_fallback', { component: 'cache' }), 0)

  noRedis.redisError('connection')
  noRedis.redisError('connection')
  t.equal(await value(noRedis.registry, 'ai_gateway_redis_errors_total', { source: 'connection' }), 2)
})

t.test('default process metrics only when asked, into the injected registry', async (t) => {
  t.notMatch((await createMetrics().scrape()).body, /process_cpu_user_seconds_total/)
  t.match((await createMetrics({ defaultMetrics: true }).scrape()).body, /process_cpu_user_seconds_total/)
})
