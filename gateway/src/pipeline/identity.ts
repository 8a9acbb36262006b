/**
 * Identity: who is calling. By default the caller proves it with
 * `Authorization: Bearer <JWT>`, HS256 only, verified with jose; `user_id` is
 * the token's `sub`. Behind an authenticating proxy the user can instead be
 * taken from a trusted header (AI_GATEWAY_TRUSTED_USER_HEADER). Every refusal
 * is 401 UNAUTHORIZED with a message that says what was wrong, never the token.
 * Runs before the body is read, so an anonymous client costs no body parsing.
 */
import { webcrypto } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { jwtVerify, errors as joseErrors, type JWSHeaderParameters, type JWTPayload, type JWTVerifyOptions } from 'jose'
import { ApiError } from '../../../common/src/errors.js'
import type { NamedStage } from './stage.js'

export interface IdentityOptions {
  /** The imported HS256 key (see importHs256Key): imported once at start, not per request. */
  key: webcrypto.CryptoKey
  /** When set, `iss` must equal it. */
  issuer?: string | undefined
  /** When set, `aud` must contain one of these. */
  audience?: readonly string[] | undefined
  /** Leeway for `exp` and `nbf`, in seconds. @default 30 */
  clockToleranceSeconds?: number
  /**
   * The key's id: a token whose header names a `kid` must name this one.
   * Unset: a token naming any `kid` is refused (that key is not one we have).
   * A token with no `kid` is verified with the one key either way.
   */
  keyId?: string | undefined
  /** Lower-case header name to take the user id from instead of a JWT. @default undefined (JWT) */
  trustedUserHeader?: string | undefined
  /**
   * The verified-token cache (see VerifiedTokenCache; built with this clock
   * and tolerance); false verifies every request with jose.
   * @default a cache of VERIFIED_TOKEN_CACHE_SIZE tokens
   */
  verifiedTokens?: VerifiedTokenCache | false
  /** Wall clock in ms, for `exp`/`nbf` (jose's and the cache's). @default Date.now */
  clock?: () => number
}

/** Imports the HS256 secret once; jwtVerify would otherwise import a raw key on every call. */
export async function importHs256Key (secret: string): Promise<webcrypto.CryptoKey> {
  return await webcrypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
}

// "Bearer" is case-insensitive (RFC 9110 §11.1); the token is RFC 6750's token68.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i
/**
 * What a user id may look like: it travels on as a header value and a log
 * field, so visible ASCII only, bounded.
 */
export const USER_ID = /^[\x21-\x7E]{1,256}$/

function unauthorized (message: string): ApiError {
  return new ApiError('UNAUTHORIZED', message, { headers: { 'www-authenticate': 'Bearer' } })
}

/** Maps jose's failures to a message that says which check failed. */
function refusal (error: unknown): ApiError {
  if (error instanceof joseErrors.JWTExpired) return unauthorized('The bearer token has expired.')
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf': return unauthorized('The bearer token is not yet valid (nbf).')
      case 'iat': return unauthorized('The bearer token was issued in the future (iat).')
      case 'iss': return unauthorized('The bearer token\'s issuer (iss) is not accepted.')
      case 'aud': return unauthorized('The bearer token\'s audience (aud) is not accepted.')
      case 'sub': return unauthorized('The bearer token has no subject (sub).')
      case 'exp': return unauthorized('The bearer token has no valid expiry (exp); tokens must expire.')
      default: return unauthorized(`The bearer token's ${error.claim} claim is invalid.`)
    }
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return unauthorized('The bearer token\'s algorithm is not accepted (HS256 only).')
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return unauthorized('The bearer token\'s signature is invalid.')
  if (error instanceof joseErrors.JOSEError) return unauthorized('The bearer token is malformed.')
  throw error
}

export type Identify = (req: IncomingMessage) => Promise<string>

/** Verified tokens a process remembers by default: some 3 MB for 10 000 tokens of ~250 bytes. */
export const VERIFIED_TOKEN_CACHE_SIZE = 10_000

/** What a verified token proved, and the times it is valid between (NumericDates, s). */
interface VerifiedToken {
  readonly sub: string
  readonly exp: number | undefined
  readonly nbf: number | undefined
}

/**
 * Tokens that passed jwtVerify, by their whole compact form (header,
 * payload and signature: a different signature over the same payload is
 * another key). Why: a client sends the same token for many requests, and
 * WebCrypto's HMAC verify costs some 25–45 µs of CPU plus a thread-pool hop
 * (latency) per request — the gateway's largest per-request cost. A hit
 * costs a Map lookup and the same `exp`/`nbf` checks jose makes, with the
 * same tolerance and clock; `iss`, `aud`, `alg`, the signature and `sub`
 * were checked when the token was stored, against this process's fixed key
 * and settings, so they cannot have changed. Only successes are stored.
 * Bounded: at `maxEntries` the oldest entry goes; an entry past its `exp`
 * (plus tolerance) is dropped when it is next looked up or reached by the
 * sweep of the oldest entries on each insert.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, VerifiedToken>()
  readonly #maxEntries: number
  readonly #toleranceSeconds: number
  readonly #clock: () => number

  constructor (options: { maxEntries: number; clockToleranceSeconds: number; clock: () => number }) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) throw new RangeError(`maxEntries must be an integer ≥ 1, got ${options.maxEntries}`)
    this.#maxEntries = options.maxEntries
    this.#toleranceSeconds = options.clockToleranceSeconds
    this.#clock = options.clock
  }

  get size (): number {
    return this.#entries.size
  }

  /** jose's NumericDate now: whole seconds, rounded down. */
  #nowSeconds (): number {
    return Math.floor(this.#clock() / 1000)
  }

  /** jose's checks (jwt_claims_set.js): `nbf > now + tolerance` is not yet valid, `exp <= now - tolerance` expired. */
  #valid (entry: VerifiedToken, now: number): boolean {
    return (entry.nbf === undefined || entry.nbf <= now + this.#toleranceSeconds) &&
      (entry.exp === undefined || entry.exp > now - this.#toleranceSeconds)
  }

  /** The user of a stored token still valid now; undefined otherwise (jose then verifies it and says why). */
  get (token: string): string | undefined {
    const entry = this.#entries.get(token)
    if (entry === undefined) return undefined
    if (this.#valid(entry, this.#nowSeconds())) return entry.sub
    this.#entries.delete(token)
    return undefined
  }

  /** Stores a token jwtVerify accepted. */
  set (token: string, entry: VerifiedToken): void {
    const entries = this.#entries
    if (entries.has(token)) entries.delete(token)
    else {
      const now = this.#nowSeconds()
      // The oldest few entries that have expired go first (a few per insert keeps this O(1)).
      let budget = 4
      for (const [key, oldest] of entries) {
        if (budget-- === 0 || this.#valid(oldest, now)) break
        entries.delete(key)
      }
      if (entries.size >= this.#maxEntries) {
        const oldest = entries.keys().next()
        if (oldest.done !== true) entries.delete(oldest.value)
      }
    }
    entries.set(token, entry)
  }

  clear (): void {
    this.#entries.clear()
  }
}

/** A NumericDate claim as jose accepted it: a number, or absent. */
function numericDate (value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined
}

export function createIdentify (options: IdentityOptions): Identify {
  const trustedHeader = options.trustedUserHeader
  if (trustedHeader !== undefined) {
    return async (req) => {
      // headersDistinct: a client (or a misconfigured proxy) sending the header twice is refused, not merged.
      const values = req.headersDistinct[trustedHeader]
      if (values === undefined || values.length === 0 || values[0] === '') throw unauthorized(`Missing user header ${trustedHeader}.`)
      if (values.length > 1 || !USER_ID.test(values[0]!)) throw unauthorized(`Malformed user header ${trustedHeader}.`)
      return values[0]!
    }
  }
  const clockTolerance = options.clockToleranceSeconds ?? 30
  const verifyOptions: JWTVerifyOptions = Object.freeze({
    algorithms: ['HS256'],
    clockTolerance,
    // A token without `exp` would be valid forever (and could never be revoked by waiting): refused.
    requiredClaims: ['sub', 'exp'],
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: [...options.audience] })
  })
  const { key, keyId } = options
  // Checked before the signature: a token that names another key was not signed with ours, whatever it carries.
  const keyFor = (header: JWSHeaderParameters): webcrypto.CryptoKey => {
    if (header.kid !== undefined && header.kid !== keyId) throw unauthorized('The bearer token names a key (kid) this gateway does not have.')
    return key
  }
  const clock = options.clock
  const cache = options.verifiedTokens === false
    ? undefined
    : options.verifiedTokens ?? new VerifiedTokenCache({ maxEntries: VERIFIED_TOKEN_CACHE_SIZE, clockToleranceSeconds: clockTolerance, clock: clock ?? Date.now })
  return async (req) => {
    const header = req.headers.authorization
    if (header === undefined || header.trim() === '') throw unauthorized('Missing bearer token: send Authorization: Bearer <JWT>.')
    const match = BEARER.exec(header)
    if (match === null) throw unauthorized('Malformed Authorization header: expected Bearer <JWT>.')
    const token = match[1]!
    const known = cache?.get(token)
    if (known !== undefined) return known
    let payload: JWTPayload
    try {
      // An injected clock is jose's clock too, so a cached token and a verified one are judged alike.
      ;({ payload } = await jwtVerify(token, keyFor, clock === undefined ? verifyOptions : { ...verifyOptions, currentDate: new Date(clock()) }))
    } catch (error) {
      throw refusal(error)
    }
    const sub = payload.sub
    // jose checks that `sub` is present, not that it is a usable string.
    if (typeof sub !== 'string' || !USER_ID.test(sub)) throw unauthorized('The bearer token\'s subject (sub) is not a usable user id.')
    cache?.set(token, { sub, exp: numericDate(payload.exp), nbf: numericDate(payload.nbf) })
    return sub
  }
}

export function createIdentityStage (options: IdentityOptions): NamedStage {
  const identify = createIdentify(options)
  return {
    name: 'identity',
    run: async (ctx, req) => {
      ctx.userId = await identify(req)
      return 'next'
    }
  }
}
