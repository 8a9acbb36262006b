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
import { jwtVerify, errors as joseErrors, type JWTVerifyOptions } from 'jose'
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
  /** Lower-case header name to take the user id from instead of a JWT. @default undefined (JWT) */
  trustedUserHeader?: string | undefined
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
      default: return unauthorized(`The bearer token's ${error.claim} claim is invalid.`)
    }
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return unauthorized('The bearer token\'s algorithm is not accepted (HS256 only).')
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return unauthorized('The bearer token\'s signature is invalid.')
  if (error instanceof joseErrors.JOSEError) return unauthorized('The bearer token is malformed.')
  throw error
}

export type Identify = (req: IncomingMessage) => Promise<string>

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
  const verifyOptions: JWTVerifyOptions = Object.freeze({
    algorithms: ['HS256'],
    clockTolerance: options.clockToleranceSeconds ?? 30,
    requiredClaims: ['sub'],
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    ...(options.audience === undefined ? {} : { audience: [...options.audience] })
  })
  return async (req) => {
    const header = req.headers.authorization
    if (header === undefined || header.trim() === '') throw unauthorized('Missing bearer token: send Authorization: Bearer <JWT>.')
    const match = BEARER.exec(header)
    if (match === null) throw unauthorized('Malformed Authorization header: expected Bearer <JWT>.')
    let sub: unknown
    try {
      ;({ payload: { sub } } = await jwtVerify(match[1]!, options.key, verifyOptions))
    } catch (error) {
      throw refusal(error)
    }
    // jose checks that `sub` is present, not that it is a usable string.
    if (typeof sub !== 'string' || !USER_ID.test(sub)) throw unauthorized('The bearer token\'s subject (sub) is not a usable user id.')
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
