/**
 * A stage is one step of the `/v1/ai/*` pipeline: a small async function of
 * `(ctx, req, res)`, in the spirit of http-proxy-3's passes. It either lets
 * the request go on (`'next'`), or has answered it (`'done'`: a cache hit,
 * the proxied answer). A refusal is thrown as an ApiError; server.ts turns it
 * into the error envelope, in one place.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestContext } from '../context.js'

export type StageResult = 'next' | 'done'

export type Stage = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => Promise<StageResult>

/** A named stage, so logs and tests can tell the order. */
export interface NamedStage {
  name: string
  run: Stage
}

/** Runs the stages in order until one answers. */
export async function runPipeline (stages: readonly NamedStage[], ctx: RequestContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  for (const stage of stages) {
    // The client left during the previous stage: nothing more to do for nobody.
    if (res.destroyed) return
    if (await stage.run(ctx, req, res) === 'done') return
  }
  // The last stage (the proxy) always answers; reaching this is a wiring bug.
  throw new Error('the pipeline ended without an answer')
}
