/**
 * The rate limiter's rows of the gateway's config table, for config.ts to
 * spread in (`...RATE_LIMIT_SETTINGS`, next to `...REDIS_SETTINGS` from
 * ../redis.ts). Defaults are those of RATE_LIMIT_DEFAULTS.
 */
import { boolean, integer, oneOf, type SettingsTable } from '../../../common/src/config.js'
import { FAILURE_MODES, RATE_LIMIT_DEFAULTS } from './limiter.js'
import { TOKEN_BUDGET_DEFAULTS } from './token-budget.js'

export const RATE_LIMIT_SETTINGS = {
  rateLimitEnabled: {
    env: 'AI_ENGINE_RATE_LIMIT_ENABLED',
    default: RATE_LIMIT_DEFAULTS.enabled,
    parse: boolean(),
    description: 'Limit requests per verified user on the generate and chat routes.'
  },
  rateLimitPerWindow: {
    env: 'AI_ENGINE_RATE_LIMIT_PER_MIN',
    default: RATE_LIMIT_DEFAULTS.limit,
    // Each counted request is one sorted-set member until it leaves the window.
    parse: integer({ min: 1, max: 10_000 }),
    description: 'Requests allowed per user in any sliding window of AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS.'
  },
  rateLimitWindowSeconds: {
    env: 'AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS',
    default: RATE_LIMIT_DEFAULTS.windowMs / 1000,
    parse: integer({ min: 1, max: 86_400 }),
    description: 'Length of the sliding window, in seconds.'
  },
  rateLimitFailureMode: {
    env: 'AI_ENGINE_RATE_LIMIT_FAILURE_MODE',
    default: RATE_LIMIT_DEFAULTS.failureMode,
    parse: oneOf(FAILURE_MODES),
    description: 'While Redis is unavailable: `memory` (per-instance limit), `open` (no limit) or `closed` (503 RATE_LIMITER_UNAVAILABLE).'
  }
} satisfies SettingsTable

/** The token budgets' rows (issue 10), spread in next to RATE_LIMIT_SETTINGS. Both limits unset: token budgets off. */
export const TOKEN_BUDGET_SETTINGS = {
  tokenLimitPerMinute: {
    env: 'AI_ENGINE_TOKEN_LIMIT_PER_MIN',
    default: undefined,
    parse: integer({ min: 1, max: 1_000_000_000 }),
    description: 'Tokens a user may reserve in any sliding 60 s window (estimate before the answer, settled to the real `usage.total_tokens` after). Unset: no per-minute token budget.'
  },
  tokenLimitPerDay: {
    env: 'AI_ENGINE_TOKEN_LIMIT_PER_DAY',
    default: undefined,
    parse: integer({ min: 1, max: 1_000_000_000_000 }),
    description: 'Tokens a user may use per UTC calendar day, reserved and settled the same way. Unset: no daily token budget.'
  },
  tokenEstimateDefaultMaxTokens: {
    env: 'AI_ENGINE_TOKEN_ESTIMATE_DEFAULT_MAX_TOKENS',
    default: TOKEN_BUDGET_DEFAULTS.defaultMaxTokens,
    parse: integer({ min: 1, max: 131_072 }),
    description: 'The answer size reserved for a request that names no `options.max_tokens` (the estimate is ceil(body bytes / 4) + max_tokens).'
  }
} satisfies SettingsTable
