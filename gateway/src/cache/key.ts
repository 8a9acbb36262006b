/**
 * Cache keys: `ai_cache:{namespace}:{use_case}:{sha256 hex}`.
 *
 * The hash covers everything the upstream's answer depends on: the whole
 * generate request body (use_case, input, context, every option) with the
 * effective temperature written in, plus, with scope `user`, the user id.
 * It is the stable JSON of that material (fast-json-stable-stringify sorts
 * object keys), so the order of keys in the request body does not matter.
 *
 * The namespace and use_case appear in the key only to make it readable in
 * Redis. The namespace comes from validated configuration. A use_case is put
 * in raw only when it is a plain name (`[A-Za-z0-9_-]{1,64}`); anything else
 * (a `:`, a `{` hash tag, spaces, a long value) is replaced by `~` and a hash
 * of it, and `~` is never part of a raw name, so a hostile use_case cannot
 * forge the structure of another key. The use_case is in the hashed material
 * too, so two use_cases that share a label still never share a key.
 */
import { createHash } from 'node:crypto'
import stringify from 'fast-json-stable-stringify'
import { effectiveTemperature } from './policy.js'

/** `global`: identical requests share one answer across users; `user`: the user id joins the key. */
export type CacheScope = 'global' | 'user'

export const CACHE_KEY_PREFIX = 'ai_cache'

/** What AI_ENGINE_CACHE_NAMESPACE may be: it is put into keys raw. */
export const CACHE_NAMESPACE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/

const RAW_USE_CASE = /^[A-Za-z0-9_-]{1,64}$/

// Bump when the hashed material changes shape, so old entries are never read as new ones.
const MATERIAL_VERSION = 1

export interface CacheKeyOptions {
  /** Part of every key; changing it invalidates everything. @default 'v1' */
  namespace: string
  /** @default 'global' */
  scope: CacheScope
}

export interface CacheKeyRequest {
  /** The parsed `POST /v1/ai/generate` body (a JSON object). */
  body: Record<string, unknown>
  /** The authenticated user's id; required when the scope is `user`, ignored otherwise. */
  userId?: string | undefined
}

export type CacheKeyFunction = (request: CacheKeyRequest) => string

/**
 * Builds the key function once, checking the namespace. Throws on a bad
 * namespace (a configuration error, caught at start-up) and, per call, when
 * the scope is `user` but no user id is given (a wiring bug: a shared key
 * must never be produced by accident).
 */
export function createCacheKey (options: CacheKeyOptions): CacheKeyFunction {
  const { namespace, scope } = options
  if (!CACHE_NAMESPACE_PATTERN.test(namespace)) {
    throw new TypeError(`cache namespace ${JSON.stringify(namespace)} must match ${String(CACHE_NAMESPACE_PATTERN)}`)
  }
  if (scope !== 'global' && scope !== 'user') throw new TypeError(`cache scope must be global or user, not ${JSON.stringify(scope)}`)
  const prefix = `${CACHE_KEY_PREFIX}:${namespace}:`

  return ({ body, userId }) => {
    if (scope === 'user' && (typeof userId !== 'string' || userId === '')) {
      throw new TypeError('cache scope is "user" but the request has no user id')
    }
    const useCase = typeof body.use_case === 'string' ? body.use_case : ''
    const material = {
      v: MATERIAL_VERSION,
      scope,
      user: scope === 'user' ? userId : null,
      body: normalizeBody(body)
    }
    return `${prefix}${useCaseLabel(useCase)}:${sha256(stringify(material))}`
  }
}

/** The use_case as it appears in the key: raw when it is a plain name, else `~` + 16 hex of its hash. */
export function useCaseLabel (useCase: string): string {
  return RAW_USE_CASE.test(useCase) ? useCase : `~${sha256(useCase).slice(0, 16)}`
}

/**
 * The body as the upstream will read it. `options.temperature` absent and
 * `0` are the same request (0 is generate's documented default), so the
 * effective temperature is written in. Everything else stays as sent: an
 * absent `model` or `max_tokens` is not replaced by the upstream's default,
 * which the gateway does not know and which may change (see docs/caching.md).
 */
function normalizeBody (body: Record<string, unknown>): Record<string, unknown> {
  if (body.options === undefined) return { ...body, options: { temperature: 0 } }
  // Not an object: the upstream refuses it; keep it as sent so it cannot meet a valid request's key.
  if (!isPlainObject(body.options)) return body
  const temperature = effectiveTemperature(body)
  return temperature === undefined ? body : { ...body, options: { ...body.options, temperature } }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function sha256 (text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}
