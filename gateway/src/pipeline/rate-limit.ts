/**
 * Rate limit: one check per request of the verified user.
 *
 * Without token budgets it runs right after identity and before the body is
 * read (a throttled client costs no parsing), and before the cache (a hit
 * counts like any other request). With token budgets on it needs the body
 * for the estimate, so it runs after the body stage and before the cache
 * (`needsBody`; pipeline/index.ts orders it): one atomic decision checks the
 * request limit and reserves the estimate (ratelimit/token-estimate.ts).
 *
 * Allowed: the rate-limit headers are set with `res.setHeader`, so every
 * later answer carries them: a cache hit or miss (sendJson/writeHead merge
 * them), the proxied answer, an upstream error passed through, a stream
 * (http-proxy-3 relays through our own `writeHead(status, headers)`, which
 * merges headers set before it), and the gateway's own 502/504. A
 * reservation is settled once, when the response closes, to what was really
 * used: `ctx.tokensUsed` (the answer's usage, or a cut stream's running
 * estimate, already there when 'close' fires), 0 when nothing was used, and
 * 0 for an answer that cost no upstream call (a cache hit, or an answer
 * shared from another request's call).
 * Denied: 429 TOKEN_BUDGET_EXCEEDED or RATE_LIMIT_EXCEEDED (or 503
 * RATE_LIMITER_UNAVAILABLE in failure mode `closed`) thrown to the error
 * boundary, with the headers on the error; upstream-ai is never called and
 * nothing is counted or reserved.
 */
import type { ServerResponse } from 'node:http'
import type { RequestContext } from '../context.js'
import {
  admissionHeaders, deniedError, estimateTokens, rateLimitHeaders, tokenDeniedError,
  type ConfiguredRateLimiter, type GatewayRateLimiter, type Reservation, type TokenWindows
} from '../ratelimit/index.js'
import type { NamedStage } from './stage.js'

export interface RateLimitStageOptions {
  /** The process's one limiter (createRateLimiter), shared by every request. */
  limiter: GatewayRateLimiter | ConfiguredRateLimiter
  /** The window in ms (AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS × 1000), for `RateLimit-Policy`. */
  windowMs: number
  /** With token budgets on: the estimate's default answer size and the windows' lengths (for `w`). @default undefined (token budgets off) */
  tokens?: (TokenWindows & { defaultMaxTokens: number }) | undefined
}

/** A stage that must run after the body stage. */
export interface RateLimitStage extends NamedStage {
  readonly needsBody: boolean
}

export function createRateLimitStage (options: RateLimitStageOptions): RateLimitStage {
  const { limiter, windowMs, tokens } = options
  const admitting = tokens !== undefined && 'tokenBudgetsOn' in limiter && limiter.tokenBudgetsOn ? limiter : undefined
  if (admitting === undefined || tokens === undefined) {
    return {
      name: 'rate-limit',
      needsBody: false,
      run: async (ctx, _req, res) => {
        if (ctx.userId === undefined) throw new Error('rate-limit stage reached without identity')
        const outcome = await limiter.check(ctx.userId)
        // Built once: deniedError's default argument built them a second time for every allowed request.
        const headers = rateLimitHeaders(outcome, windowMs)
        const refusal = deniedError(outcome, windowMs, headers)
        if (refusal !== undefined) {
          // Only a spent budget is "rate limited"; an unavailable limiter (503) is a dependency failure.
          if (refusal.type === 'RATE_LIMIT_EXCEEDED') ctx.rateLimited = true
          throw refusal
        }
        setHeaders(res, headers)
        return 'next'
      }
    }
  }

  const settleOnClose = (ctx: RequestContext, res: ServerResponse, reservation: Reservation): void => {
    // 'close' fires once per response, whatever ended it: exactly one settle per reservation.
    res.once('close', () => {
      const free = ctx.cached || ctx.collapsed
      admitting.settle(reservation, free ? 0 : ctx.tokensUsed ?? 0)
    })
  }

  return {
    name: 'rate-limit',
    needsBody: true,
    run: async (ctx, _req, res) => {
      if (ctx.userId === undefined || ctx.body === undefined) throw new Error('rate-limit stage (token budgets) reached without identity or body')
      const estimate = estimateTokens(ctx.body, tokens.defaultMaxTokens)
      const admission = await admitting.admit(ctx.userId, estimate.total)
      const headers = admissionHeaders(admission, windowMs, tokens)
      if (admission.tokens?.allowed === false) {
        ctx.rateLimited = true
        throw tokenDeniedError(admission.tokens, headers)
      }
      const refusal = admission.request === undefined ? undefined : deniedError(admission.request, windowMs, headers)
      if (refusal !== undefined) {
        if (refusal.type === 'RATE_LIMIT_EXCEEDED') ctx.rateLimited = true
        throw refusal
      }
      if (admission.reservation !== undefined) {
        ctx.promptTokens = estimate.prompt
        settleOnClose(ctx, res, admission.reservation)
      }
      setHeaders(res, headers)
      return 'next'
    }
  }
}

function setHeaders (res: ServerResponse, headers: Record<string, string>): void {
  for (const name in headers) res.setHeader(name, headers[name]!)
}
