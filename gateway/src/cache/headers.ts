/**
 * The cache's response headers: `X-Cache` (HIT, MISS or BYPASS, the
 * de-facto header people grep for), RFC 9211 `Cache-Status` (one list member
 * for this gateway's cache) and, on hits, `Age` (RFC 9111 §5.1).
 *
 * Cache-Status, as RFC 9211 defines its parameters:
 *   hit:     `ai-gateway; hit; ttl=<remaining seconds>`
 *   miss:    `ai-gateway; fwd=miss[; fwd-status=<status>][; collapsed][; stored]`
 *   bypass:  `ai-gateway; fwd=bypass[; fwd-status=<status>][; stored]; detail=<reason>`
 * `fwd=miss` rather than `uri-miss`: the key is not the URI. `fwd=bypass`
 * also for `Cache-Control: no-cache`, because the lookup is skipped (RFC
 * 9211's `fwd=request` means a fresh stored answer was found and refused).
 * Answers the gateway makes itself (401, 429, …) carry none of these headers
 * (RFC 9211 §2: not for locally generated responses).
 */
import { ageSeconds } from './answer.js'
import type { BypassReason } from './policy.js'
import type { CacheEntry } from './store.js'

/** This cache's identifier in Cache-Status (an sf-token). */
export const CACHE_STATUS_IDENTIFIER = 'ai-gateway'

export type CacheOutcome =
  | {
    kind: 'hit'
    entry: CacheEntry
    /** The configured ttl the entry was stored with (AI_ENGINE_CACHE_TTL_SECONDS). */
    ttlSeconds: number
    nowMs: number
  }
  | {
    kind: 'miss'
    /** Whether the answer was stored. */
    stored: boolean
    /** Whether this request joined another's upstream call (coalesce.ts). */
    collapsed: boolean
    /** The upstream's status. */
    fwdStatus?: number | undefined
  }
  | {
    kind: 'bypass'
    reason: BypassReason
    /** Whether the answer was stored (only ever for `no-cache`). */
    stored: boolean
    fwdStatus?: number | undefined
  }

export function cacheHeaders (outcome: CacheOutcome): Record<string, string> {
  switch (outcome.kind) {
    case 'hit': {
      const age = ageSeconds(outcome.entry, outcome.nowMs)
      const ttl = Math.max(0, outcome.ttlSeconds - age)
      return {
        'x-cache': 'HIT',
        'cache-status': `${CACHE_STATUS_IDENTIFIER}; hit; ttl=${ttl}`,
        age: String(age)
      }
    }
    case 'miss':
      return {
        'x-cache': 'MISS',
        'cache-status': member('miss', outcome.fwdStatus, [
          outcome.collapsed ? 'collapsed' : undefined,
          outcome.stored ? 'stored' : undefined
        ])
      }
    case 'bypass':
      return {
        'x-cache': 'BYPASS',
        'cache-status': member('bypass', outcome.fwdStatus, [
          outcome.stored ? 'stored' : undefined,
          `detail=${outcome.reason}`
        ])
      }
  }
}

function member (fwd: string, fwdStatus: number | undefined, parameters: Array<string | undefined>): string {
  const parts = [CACHE_STATUS_IDENTIFIER, `fwd=${fwd}`]
  if (fwdStatus !== undefined && Number.isInteger(fwdStatus)) parts.push(`fwd-status=${fwdStatus}`)
  for (const parameter of parameters) if (parameter !== undefined) parts.push(parameter)
  return parts.join('; ')
}
