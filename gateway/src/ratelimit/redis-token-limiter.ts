/**
 * The Redis admission with token budgets: one EVALSHA of ADMIT_SCRIPT per
 * request (the request limit and the reservation together), one of
 * SETTLE_SCRIPT per answer, off the request path. Shared by every gateway
 * replica, so the budgets hold across replicas. Every method rejects when
 * Redis fails; the failover limiter decides what that means.
 */
import type { RedisClient } from '../redis.js'
import { rateLimitKey, tokenBudgetKeys } from './keys.js'
import type { RateLimitResult } from './limiter.js'
import { ADMIT_COMMAND, ADMIT_SCRIPT, SETTLE_COMMAND, SETTLE_SCRIPT, TOKEN_STATUS_COMMAND, TOKEN_STATUS_SCRIPT } from './scripts.js'
import {
  assertTokenLimits, budgetStatuses, TOKEN_BUDGET_DEFAULTS,
  type TokenBudgetLimits, type TokenDecision, type TokenLimiter
} from './token-budget.js'

export interface RedisTokenLimiterOptions {
  /** The shared client (createRedisClient or createRedisClusterClient in ../redis.ts). */
  redis: RedisClient
  /** Requests allowed per request window (AI_ENGINE_RATE_LIMIT_PER_MIN); undefined: no request limit. */
  requestLimit: number | undefined
  /** The request window in milliseconds (AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS × 1000). */
  windowMs: number
  /** The token budgets (at least one on). */
  tokens: TokenBudgetLimits
}

type Command = (...args: Array<string | number>) => Promise<unknown>

const VERDICTS = ['allowed', 'requests', 'minute', 'day'] as const

export function createRedisTokenLimiter (options: RedisTokenLimiterOptions): TokenLimiter {
  const { redis, windowMs, tokens: limits } = options
  assertTokenLimits(limits)
  const requestLimit = options.requestLimit ?? 0
  const minuteMs = limits.minuteMs ?? TOKEN_BUDGET_DEFAULTS.minuteMs
  const dayMs = limits.dayMs ?? TOKEN_BUDGET_DEFAULTS.dayMs
  redis.defineCommand(ADMIT_COMMAND, { numberOfKeys: 4, lua: ADMIT_SCRIPT })
  redis.defineCommand(SETTLE_COMMAND, { numberOfKeys: 3, lua: SETTLE_SCRIPT })
  redis.defineCommand(TOKEN_STATUS_COMMAND, { numberOfKeys: 3, lua: TOKEN_STATUS_SCRIPT })
  const command = (name: string): Command => {
    const fn = (redis as unknown as Record<string, Command>)[name]!
    return async (...args) => await fn.apply(redis, args)
  }
  const admitCommand = command(ADMIT_COMMAND)
  const settleCommand = command(SETTLE_COMMAND)
  const statusCommand = command(TOKEN_STATUS_COMMAND)

  return {
    async admit (userId, need) {
      const keys = tokenBudgetKeys(userId)
      const reply = await admitCommand(
        rateLimitKey(userId), keys.minute, keys.minuteTokens, keys.day,
        requestLimit, windowMs, need, limits.perMinute ?? 0, minuteMs, limits.perDay ?? 0, dayMs
      )
      if (!Array.isArray(reply) || reply.length !== 10) throw new Error(`unexpected reply from the admit script: ${JSON.stringify(reply)}`)
      const [verdictCode, remaining, resetMs, minuteUsed, minuteResetMs, dayUsed, dayResetMs, retryAfterMs, id, day] =
        reply.map((value, index) => index === 8 ? String(value) : Number(value)) as [number, number, number, number, number, number, number, number, string, number]
      const verdict = VERDICTS[verdictCode]
      if (verdict === undefined) throw new Error(`unexpected verdict from the admit script: ${verdictCode}`)
      const budgets = budgetStatuses(limits, { used: minuteUsed, resetMs: minuteResetMs }, { used: dayUsed, resetMs: dayResetMs })
      const tokenRefused = verdict === 'minute' || verdict === 'day'
      const decision: TokenDecision = {
        allowed: !tokenRefused,
        requested: need,
        budgets,
        deniedBy: tokenRefused ? budgets.find((budget) => budget.window === verdict) : undefined,
        retryAfterMs: tokenRefused ? Math.max(retryAfterMs, 1) : 0
      }
      if (tokenRefused) return { request: undefined, tokens: decision, reservation: undefined }
      const request: RateLimitResult = requestLimit === 0
        ? { allowed: true, limit: 0, remaining: 0, resetMs: 0, retryAfterMs: 0, source: 'none' }
        : {
            allowed: verdict === 'allowed',
            limit: requestLimit,
            remaining,
            resetMs,
            retryAfterMs: verdict === 'allowed' ? 0 : Math.min(Math.max(resetMs, 1), windowMs),
            source: 'redis'
          }
      return {
        request,
        tokens: decision,
        reservation: verdict === 'allowed' ? { userId, id, tokens: need, day, source: 'redis' } : undefined
      }
    },
    async settle (reservation, usedTokens) {
      const keys = tokenBudgetKeys(reservation.userId)
      await settleCommand(
        keys.minute, keys.minuteTokens, keys.day,
        reservation.id, reservation.tokens, Math.max(0, Math.round(usedTokens)), limits.perDay === undefined ? -1 : reservation.day
      )
    },
    async budgets (userId) {
      const keys = tokenBudgetKeys(userId)
      const reply = await statusCommand(keys.minute, keys.minuteTokens, keys.day, minuteMs, dayMs)
      if (!Array.isArray(reply) || reply.length !== 4) throw new Error(`unexpected reply from the token status script: ${JSON.stringify(reply)}`)
      const [minuteUsed, minuteResetMs, dayUsed, dayResetMs] = reply.map(Number) as [number, number, number, number]
      return budgetStatuses(limits, { used: minuteUsed, resetMs: minuteResetMs }, { used: dayUsed, resetMs: dayResetMs })
    }
  }
}
