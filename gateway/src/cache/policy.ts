/**
 * What may be cached: a pure function of the route, the parsed body and the
 * request headers. Only deterministic generations are cached: `POST
 * /v1/ai/generate` with an effective temperature of 0 or less. Chat
 * (streaming or not) and any temperature above 0 never are.
 *
 * A client's `Cache-Control: no-cache` skips the lookup but the fresh answer
 * is still stored; `no-store` skips both (RFC 9111 §5.2.1).
 */

export const GENERATE_ROUTE = Object.freeze({ method: 'POST', path: '/v1/ai/generate' })

/** Why a request does not use the cache. */
export type BypassReason =
  /** Not `POST /v1/ai/generate` (chat included). */
  | 'route'
  /** The body asks for a streamed answer; partial answers are never stored. */
  | 'streaming'
  /** The effective temperature is above 0: answers are not deterministic. */
  | 'temperature'
  /** The body is not a valid generate request; the upstream will refuse it. */
  | 'invalid-body'
  /** `Cache-Control: no-cache`: fresh answer wanted, but it may be stored. */
  | 'no-cache'
  /** `Cache-Control: no-store`: nothing about this request is stored. */
  | 'no-store'

export type Cacheability =
  | { kind: 'cacheable' }
  | { kind: 'bypass'; store: boolean; reason: BypassReason }

export interface RouteInfo {
  method: string
  /** The request path; a query string is ignored. */
  path: string
}

export type RequestHeaders = Record<string, string | string[] | undefined>

export function cacheability (route: RouteInfo, body: unknown, headers: RequestHeaders): Cacheability {
  const path = route.path.split('?', 1)[0]
  if (route.method.toUpperCase() !== GENERATE_ROUTE.method || path !== GENERATE_ROUTE.path) {
    return bypass('route', false)
  }
  if (!isPlainObject(body) || typeof body.use_case !== 'string' || body.use_case === '') return bypass('invalid-body', false)
  if (body.options !== undefined && !isPlainObject(body.options)) return bypass('invalid-body', false)
  if (body.stream === true || (isPlainObject(body.options) && body.options.stream === true)) return bypass('streaming', false)
  const temperature = effectiveTemperature(body)
  if (temperature === undefined) return bypass('invalid-body', false)
  if (temperature > 0) return bypass('temperature', false)

  const directives = cacheControlDirectives(headers['cache-control'])
  if (directives.has('no-store')) return bypass('no-store', false)
  if (directives.has('no-cache')) return bypass('no-cache', true)
  return { kind: 'cacheable' }
}

/**
 * `options.temperature`, or 0 when it is absent (generate's documented
 * default). `undefined` when it is present but not a finite number: such a
 * request is invalid, and the upstream answers it with an error.
 */
export function effectiveTemperature (body: Record<string, unknown>): number | undefined {
  const options = body.options
  if (options === undefined) return 0
  if (!isPlainObject(options)) return undefined
  const temperature = options.temperature
  if (temperature === undefined) return 0
  return typeof temperature === 'number' && Number.isFinite(temperature) ? temperature : undefined
}

/** The directive names of a request's Cache-Control header(s), lowercased. */
function cacheControlDirectives (header: string | string[] | undefined): Set<string> {
  const directives = new Set<string>()
  if (header === undefined) return directives
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(',')) {
      const name = part.split('=', 1)[0]!.trim().toLowerCase()
      if (name !== '') directives.add(name)
    }
  }
  return directives
}

function bypass (reason: BypassReason, store: boolean): Cacheability {
  return { kind: 'bypass', store, reason }
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
