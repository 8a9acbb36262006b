/**
 * The `/v1/ai/*` pipeline, in order. Each stage fills in the request
 * context; server.ts runs them and is the one error boundary.
 *
 *   identity → [rate limit] → body → [cache] → proxy        (completion log on close)
 *   identity → body → rate limit + token reservation → [cache] → proxy   (token budgets on)
 *
 * - rate limit runs right after identity: it needs `ctx.userId` and refuses
 *   before the body is read (a throttled client costs no parsing). With
 *   token budgets on it needs the body for the token estimate, so it moves
 *   after the body stage (its `needsBody`); it still runs before the cache,
 *   so a cache hit is counted (and settled at 0 tokens). It throws the 429 /
 *   503 ApiError, or sets its headers with `res.setHeader`, which every later
 *   answer (proxied, cached, error) carries.
 * - cache slots in between body and proxy: it keys on `ctx.userId`,
 *   `ctx.route` and `ctx.body.json`, answers a hit itself (`'done'`), and on a
 *   miss reads the upstream answer with undici to store it; streams
 *   (`ctx.stream`) go straight to the proxy.
 * The completion log is not a stage: it is attached when the request arrives
 * so that it runs exactly once whatever stage ends the request.
 */
import type { NamedStage } from './stage.js'

export interface PipelineStages {
  identity: NamedStage
  /** Issue: rate limiting (and token budgets, issue 10: then `needsBody`). */
  rateLimit?: (NamedStage & { readonly needsBody?: boolean }) | undefined
  body: NamedStage
  /** Issue: caching. */
  cache?: NamedStage | undefined
  proxy: NamedStage
}

export function buildPipeline (stages: PipelineStages): readonly NamedStage[] {
  const { identity, rateLimit, body, cache, proxy } = stages
  const order = rateLimit?.needsBody === true
    ? [identity, body, rateLimit, cache, proxy]
    : [identity, rateLimit, body, cache, proxy]
  return Object.freeze(order.filter((stage): stage is NamedStage => stage !== undefined))
}
