/**
 * Health, a first version (the observability issue adds Redis and more):
 * `/health` and `/health/ready` say `healthy` (200) when the gateway is not
 * draining and upstream-ai answers its own `/health`, else `unhealthy` (503);
 * `/health/live` only says the process is up. The upstream probe is shared
 * by concurrent callers and its result reused briefly, so load-balancer
 * checks never multiply into probe storms.
 */
import type { Dispatcher } from 'undici'

export type ProbeStatus = 'up' | 'down'

export interface ProbeResult {
  status: ProbeStatus
  latency_ms: number
  /** Why it is down (a status code or an error code), never a body. */
  error?: string
}

export interface HealthReport {
  httpStatus: 200 | 503
  body: {
    status: 'healthy' | 'unhealthy'
    draining: boolean
    dependencies: { upstream_ai: ProbeResult | { status: 'skipped' } }
  }
}

export interface HealthOptions {
  /** undici dispatcher for upstream-ai (it reads the answer; proxied traffic uses the http.Agent). */
  dispatcher: Dispatcher
  upstreamUrl: URL
  isDraining: () => boolean
  now: () => number
  /** How long one probe may take, in ms. @default 2000 */
  probeTimeoutMs?: number
  /** How long a probe result is reused, in ms. @default 1000 */
  cacheMs?: number
}

export interface Health {
  report: () => Promise<HealthReport>
}

export function createHealth (options: HealthOptions): Health {
  const probeTimeoutMs = options.probeTimeoutMs ?? 2000
  const cacheMs = options.cacheMs ?? 1000
  const healthUrl = new URL('health', options.upstreamUrl.href.endsWith('/') ? options.upstreamUrl : `${options.upstreamUrl.href}/`)
  let cached: { result: ProbeResult; at: number } | undefined
  let inFlight: Promise<ProbeResult> | undefined

  const probe = async (): Promise<ProbeResult> => {
    const started = options.now()
    const latency = (): number => Math.round(options.now() - started)
    try {
      const { statusCode, body } = await options.dispatcher.request({
        origin: healthUrl.origin,
        path: healthUrl.pathname,
        method: 'GET',
        headersTimeout: probeTimeoutMs,
        bodyTimeout: probeTimeoutMs,
        signal: AbortSignal.timeout(probeTimeoutMs)
      })
      await body.dump()
      return statusCode >= 200 && statusCode < 300
        ? { status: 'up', latency_ms: latency() }
        : { status: 'down', latency_ms: latency(), error: `HTTP ${statusCode}` }
    } catch (error) {
      const code = (error as { code?: unknown }).code
      return { status: 'down', latency_ms: latency(), error: typeof code === 'string' ? code : (error as Error).name }
    }
  }

  const upstreamStatus = async (): Promise<ProbeResult> => {
    if (cached !== undefined && options.now() - cached.at < cacheMs) return cached.result
    inFlight ??= probe().then((result) => {
      cached = { result, at: options.now() }
      return result
    }).finally(() => { inFlight = undefined })
    return await inFlight
  }

  return {
    report: async () => {
      if (options.isDraining()) {
        // No probe: the answer is 503 whatever upstream-ai says.
        return { httpStatus: 503, body: { status: 'unhealthy', draining: true, dependencies: { upstream_ai: { status: 'skipped' } } } }
      }
      const upstream = await upstreamStatus()
      const healthy = upstream.status === 'up'
      return {
        httpStatus: healthy ? 200 : 503,
        body: { status: healthy ? 'healthy' : 'unhealthy', draining: false, dependencies: { upstream_ai: upstream } }
      }
    }
  }
}
