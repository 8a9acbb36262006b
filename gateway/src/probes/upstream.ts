/** upstream-ai probe: `GET /health` on its base URL answers 2xx (upstream-ai says 503 while it drains). */
import type { Dispatcher } from 'undici'
import { timedProbe, type Probe } from './probe.js'

export interface UpstreamProbeOptions {
  /** A small undici pool to upstream-ai (it reads the answer; proxied traffic uses the http.Agent). */
  dispatcher: Dispatcher
  /** upstream-ai's base URL; `health` is resolved against it. */
  upstreamUrl: URL
  /** @default 1000 */
  timeoutMs?: number
  now: () => number
}

export function createUpstreamProbe (options: UpstreamProbeOptions): Probe {
  const timeoutMs = options.timeoutMs ?? 1000
  const base = options.upstreamUrl.href.endsWith('/') ? options.upstreamUrl : new URL(`${options.upstreamUrl.href}/`)
  const healthUrl = new URL('health', base)
  return timedProbe(async (signal) => {
    const { statusCode, body } = await options.dispatcher.request({
      origin: healthUrl.origin,
      path: healthUrl.pathname,
      method: 'GET',
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal
    })
    await body.dump()
    return statusCode >= 200 && statusCode < 300 ? undefined : `HTTP ${statusCode}`
  }, timeoutMs, options.now)
}
