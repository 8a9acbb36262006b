/**
 * The `/v1/ai/*` pipeline, in order. Each stage fills in the request
 * context; server.ts runs them and is the one error boundary.
 *
 *   identity → [rate limit] → body → [cache] → proxy        (completion log on close)
 *
 * Seams for the next issues:
 * - rate limit slots in right after identity: it needs `ctx.userId` and must
 *   refuse before the body is read (a throttled client costs no parsing). It
 *   throws ApiError('RATE_LIMIT_EXCEEDED', …, { headers: { 'retry-after': … } }) or
 *   sets its `X-RateLimit-*` headers with `res.setHeader`, which every later
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
  /** Issue: rate limiting. */
  rateLimit?: NamedStage | undefined
  body: NamedStage
  /** Issue: caching. */
  cache?: NamedStage | undefined
  proxy: NamedStage
}

export function buildPipeline (stages: PipelineStages): readonly NamedStage[] {
  return Object.freeze([stages.identity, stages.rateLimit, stages.body, stages.cache, stages.proxy]
    .filter((stage): stage is NamedStage => stage !== undefined))
}
