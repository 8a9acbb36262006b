/**
 * Rate-limit keys: `ai_ratelimit:{<tag>}`, one sorted set per user. The braces
 * are a Redis Cluster hash tag, so a user's key always lives in one slot.
 *
 * The tag is the user id itself when it is short and plain (1–128 bytes of
 * `A–Z a–z 0–9 _ . @ + -`), so keys stay readable in `redis-cli`. Anything
 * else — empty, longer, or with any other character (whitespace, braces,
 * colons, `|`, non-ASCII, control characters) — becomes `sha256:<64 hex>` of
 * its UTF-8 bytes (`sha256-utf16:<64 hex>` of its UTF-16 code units for the
 * rare string with a lone surrogate, which UTF-8 cannot encode losslessly).
 * Consequences:
 * - ids are never folded: `Alice`, `alice`, ` alice` and the NFC and NFD
 *   spellings of `é` are different users with different keys;
 * - a tag can never contain `{`, `}` or whitespace, and is at most 128 bytes;
 * - a hashed tag contains `:`, which plain ids cannot, so the two forms never collide.
 * Keys carry the verified user id, never a token.
 */
import { createHash } from 'node:crypto'

export const RATE_LIMIT_KEY_PREFIX = 'ai_ratelimit:'

/** Longest user id, in UTF-8 bytes, kept as is in a key. */
export const MAX_PLAIN_ID_BYTES = 128

const PLAIN_ID = /^[A-Za-z0-9_.@+-]+$/
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** The part between the braces: the id itself, or `sha256:<hex>`. */
export function userTag (userId: string): string {
  // The pattern is ASCII-only, so the length in characters is the length in bytes.
  if (userId.length <= MAX_PLAIN_ID_BYTES && PLAIN_ID.test(userId)) return userId
  // UTF-8 would turn every lone surrogate into U+FFFD, making distinct ids collide.
  if (LONE_SURROGATE.test(userId)) return `sha256-utf16:${createHash('sha256').update(userId, 'utf16le').digest('hex')}`
  return `sha256:${createHash('sha256').update(userId, 'utf8').digest('hex')}`
}

/** `ai_ratelimit:{<tag>}` for one user. */
export function rateLimitKey (userId: string): string {
  return `${RATE_LIMIT_KEY_PREFIX}{${userTag(userId)}}`
}

export const TOKEN_KEY_PREFIX = 'ai_tokens:'

/** The user's token-budget keys: the same `{<tag>}` as rateLimitKey, so all of a user's keys share one Cluster slot. */
export interface TokenBudgetKeys {
  /** `ai_tokens:{<tag>}:minute`: sorted set of the minute's reservation ids, scored by time. */
  minute: string
  /** `ai_tokens:{<tag>}:minute:tokens`: hash, reservation id → tokens. */
  minuteTokens: string
  /** `ai_tokens:{<tag>}:day`: hash with the day index and the tokens used that day. */
  day: string
}

export function tokenBudgetKeys (userId: string): TokenBudgetKeys {
  const base = `${TOKEN_KEY_PREFIX}{${userTag(userId)}}`
  return { minute: `${base}:minute`, minuteTokens: `${base}:minute:tokens`, day: `${base}:day` }
}
