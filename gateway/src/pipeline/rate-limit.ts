/**
 * Rate limit: one check per request of the verified user, right after
 * identity and before the body is read (a throttled client costs no
 * parsing) and before the cache (a hit counts like any other request).
 *
 * Allowed: the rate-limit headers are set with `res.setHeader`, so every
 * later answer carries them: a cache hit or miss (sendJson/writeHead merge
 * them), the proxied answer, an upstream error passed through, a stream
 * (http-proxy-3 relays through our own `writeHead(status, headers)`, which
 * merges headers set before it), and the gateway's own 502/504.
 * Denied: 429 RATE_LIMIT_EXCEEDED (or 503 RATE_LIMITER_UNAVAILABLE in failure
 * mode `closed`) thrown to the error boundary, with the headers on the error;
 * upstream-ai is never called and nothing is counted (the limiter does not
 * count denied requests).
 */
import { deniedError, rateLimitHeaders, type GatewayRateLimiter } from '../ratelimit/index.js'
import type { NamedStage } from './stage.js'

export interface RateLimitStageOptions {
  /** The process's one limiter (createRateLimiter), shared by every request. */
  limiter: GatewayRateLimiter
  /** The window in ms (AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS × 1000), for `RateLimit-Policy`. */
  windowMs: number
}

export function createRateLimitStage (options: RateLimitStageOptions): NamedStage {
  const { limiter, windowMs } = options
  return {
    name: 'rate-limit',
    run: async (ctx, _req, res) => {
      if (ctx.userId === undefined) throw new Error('rate-limit stage reached without identity')
      const outcome = await limiter.check(ctx.userId)
      const refusal = deniedError(outcome, windowMs)
      if (refusal !== undefined) {
        // Only a spent budget is "rate limited"; an unavailable limiter (503) is a dependency failure.
        if (refusal.type === 'RATE_LIMIT_EXCEEDED') ctx.rateLimited = true
        throw refusal
      }
      const headers = rateLimitHeaders(outcome, windowMs)
      for (const name in headers) res.setHeader(name, headers[name]!)
      return 'next'
    }
  }
}
