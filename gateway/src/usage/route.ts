/**
 * GET /v1/ai/usage: the caller's own usage today (UTC) and their remaining
 * budgets (docs/usage.md, docs/api.md).
 *
 * - The caller is proven by the same identity stage as the AI routes; the
 *   user comes from it alone. The route takes no query parameters: one that
 *   names a user (or anything else) is refused with 400 rather than
 *   ignored, so that no client can mistake its own numbers for someone
 *   else's. Other headers (a forged `X-User-Id`) play no part, unless the
 *   gateway is configured to take the user from a trusted header.
 * - Not rate limited, and not usage itself: reading one's budget spends
 *   none of it (a client that was refused needs to see when it resets).
 * - PostgreSQL unreachable: the usage still in memory, `"ledger":
 *   "unavailable"`, status 200. No DATABASE_URL: `"usage": null`,
 *   `"ledger": "disabled"`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ApiError } from '../../../common/src/errors.js'
import { sendJson } from '../../../common/src/http.js'
import type { Logger } from '../../../common/src/logger.js'
import type { RequestContext } from '../context.js'
import type { NamedStage } from '../pipeline/stage.js'
import type { TokenBudgetStatus } from '../ratelimit/token-budget.js'
import type { UsageLedger } from './ledger.js'
import { readDayUsage } from './reader.js'
import { NO_USE_CASE, utcDay, type UsageCounts } from './record.js'
import type { UsageStore } from './store.js'

export const USAGE_PATH = '/v1/ai/usage'

export interface UsageRouteOptions {
  /** The AI routes' identity stage (pipeline/identity.ts): sets `ctx.userId` or throws 401. */
  identity: NamedStage
  /** The ledger and its store; undefined when DATABASE_URL is unset (the ledger is off). */
  ledger?: { ledger: UsageLedger; store: UsageStore } | undefined
  /** The caller's token budgets (the rate limiter's reader). @default undefined (none shown) */
  tokenBudgets?: ((userId: string) => Promise<TokenBudgetStatus[]>) | undefined
  /** The request limit as configured, shown as is; undefined when request limiting is off. */
  requestLimit?: { limit: number; windowSeconds: number } | undefined
  logger: Logger
  /** Wall clock in ms: what "today" is. @default Date.now */
  clock?: () => number
}

export type UsageRoute = (ctx: RequestContext, req: IncomingMessage, res: ServerResponse) => Promise<void>

interface UseCaseUsage {
  use_case: string | null
  requests: number
  tokens: number
  cached_requests: number
}

/** Refuses any query parameter, naming the first. */
function refuseQuery (url: string | undefined): void {
  const query = url?.indexOf('?') ?? -1
  if (query === -1) return
  const first = new URLSearchParams(url!.slice(query + 1)).keys().next()
  if (first.done === true) return
  throw new ApiError('INVALID_REQUEST', `${USAGE_PATH} takes no query parameters: it always answers for the user of the bearer token.`, {
    extra: { field: first.value.slice(0, 64) }
  })
}

function summarise (byUseCase: Map<string, UsageCounts>): { requests: number; tokens: number; cached_requests: number; by_use_case: UseCaseUsage[] } {
  const rows = [...byUseCase.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
  const total = { requests: 0, tokens: 0, cached_requests: 0 }
  const byCase: UseCaseUsage[] = []
  for (const [useCase, counts] of rows) {
    total.requests += counts.requests
    total.tokens += counts.tokens
    total.cached_requests += counts.cachedRequests
    byCase.push({ use_case: useCase === NO_USE_CASE ? null : useCase, requests: counts.requests, tokens: counts.tokens, cached_requests: counts.cachedRequests })
  }
  return { ...total, by_use_case: byCase }
}

export function createUsageRoute (options: UsageRouteOptions): UsageRoute {
  const { identity, logger, tokenBudgets, requestLimit } = options
  const clock = options.clock ?? Date.now
  return async (ctx, req, res) => {
    await identity.run(ctx, req, res)
    const userId = ctx.userId
    if (userId === undefined) throw new Error('identity stage passed without a user')
    refuseQuery(req.url)
    const day = utcDay(clock())

    const [usage, budgets] = await Promise.all([
      options.ledger === undefined ? undefined : readDayUsage(options.ledger.store, options.ledger.ledger, userId, day),
      tokenBudgets === undefined
        ? []
        : tokenBudgets(userId).catch((error: unknown) => {
          logger.warn({ request_id: ctx.requestId, error: (error as Error)?.name ?? 'error' }, 'usage: token budgets could not be read')
          return null
        })
    ])
    if (usage?.error !== undefined) {
      logger.warn({ request_id: ctx.requestId, error: usage.error }, 'usage: PostgreSQL could not be read; answering from memory')
    }
    sendJson(res, 200, {
      data: {
        user_id: userId,
        day,
        ledger: usage === undefined ? 'disabled' : usage.ledger,
        usage: usage === undefined ? null : summarise(usage.byUseCase),
        budgets: budgets === null
          ? null
          : budgets.map((budget) => ({ window: budget.window, limit: budget.limit, used: budget.used, remaining: budget.remaining, reset_ms: budget.resetMs })),
        rate_limit: requestLimit === undefined ? null : { limit: requestLimit.limit, window_seconds: requestLimit.windowSeconds }
      },
      meta: { request_id: ctx.requestId }
    }, { 'cache-control': 'private, no-store' })
  }
}
