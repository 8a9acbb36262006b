/**
 * Which headers cross the gateway, in each direction. Hop-by-hop headers
 * (RFC 9110 §7.6.1: Connection and every header it names, plus the classic
 * list) never do. Toward upstream-ai the gateway also drops credentials it
 * has no use for and every identity or forwarding header a client could
 * forge, then sets its own: the verified user, the request id, the trace,
 * X-Forwarded-* from the connection, and the length of the bytes it forwards.
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http'
import { TLSSocket } from 'node:tls'

export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authorization', 'proxy-authenticate'
])

const NOT_TO_UPSTREAM: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  // Credentials: upstream-ai trusts X-User-Id and has no use for these.
  'authorization', 'cookie',
  // Set by the gateway below, whatever the client sent.
  'x-user-id', 'x-request-id', 'traceparent', 'content-length', 'host',
  // Forgeable client addresses; replaced by X-Forwarded-For/Proto/Host from the connection.
  'forwarded', 'x-real-ip',
  // The body was read already; the upstream request has no 100-continue dance.
  'expect',
  'http2-settings'
])

const NOT_TO_CLIENT: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  // The gateway's own id is on every answer already.
  'x-request-id'
])

/** Connection values seen before, parsed: every keep-alive answer from upstream-ai carries the same one. */
const parsedConnectionValues = new Map<string, ReadonlySet<string>>()
/** Distinct values remembered; others (a client sending odd ones) are parsed each time. */
const MAX_PARSED_CONNECTION_VALUES = 64

/** The header names a Connection header lists (lower case). */
export function connectionOptions (value: string | string[] | undefined): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string') {
    const known = parsedConnectionValues.get(value)
    if (known !== undefined) return known
    const names = parseConnectionOptions([value])
    if (parsedConnectionValues.size < MAX_PARSED_CONNECTION_VALUES && value.length <= 256) parsedConnectionValues.set(value, names)
    return names
  }
  return parseConnectionOptions(value)
}

function parseConnectionOptions (value: readonly string[]): ReadonlySet<string> {
  const names = new Set<string>()
  for (const item of value) {
    for (const name of item.split(',')) {
      const trimmed = name.trim().toLowerCase()
      if (trimmed !== '') names.add(trimmed)
    }
  }
  return names
}

export interface UpstreamHeaderValues {
  userId: string
  requestId: string
  traceparent: string
  /** The caller's trace was continued: their `tracestate` still belongs to it. */
  traceContinued: boolean
  bodyLength: number
  /** A trusted user header (lower case) is consumed here, not passed on. */
  trustedUserHeader?: string | undefined
}

export function upstreamRequestHeaders (req: IncomingMessage, values: UpstreamHeaderValues): OutgoingHttpHeaders {
  const named = connectionOptions(req.headers.connection)
  const headers: OutgoingHttpHeaders = {}
  const trusted = values.trustedUserHeader?.replaceAll('_', '-')
  for (const name in req.headers) {
    const value = req.headers[name]
    if (value === undefined) continue
    // `X_User_Id` is another header to Node, but CGI-style servers (and some proxies) read `_` as `-`:
    // every check is made on the dashed spelling, so no underscore variant slips a forged header through.
    const canonical = name.includes('_') ? name.replaceAll('_', '-') : name
    if (NOT_TO_UPSTREAM.has(canonical) || named?.has(canonical) === true || named?.has(name) === true ||
      canonical.startsWith('x-forwarded-') || canonical === trusted) continue
    if (canonical === 'tracestate' && !values.traceContinued) continue
    headers[name] = value
  }
  headers['x-user-id'] = values.userId
  headers['x-request-id'] = values.requestId
  headers.traceparent = values.traceparent
  headers['content-length'] = values.bodyLength
  // As a proxy would: from the connection it accepted, replacing anything the client claimed.
  const remoteAddress = req.socket.remoteAddress
  if (remoteAddress !== undefined) headers['x-forwarded-for'] = remoteAddress
  headers['x-forwarded-proto'] = req.socket instanceof TLSSocket && req.socket.encrypted ? 'https' : 'http'
  if (req.headers.host !== undefined) headers['x-forwarded-host'] = req.headers.host
  return headers
}

/** upstream-ai's answer headers minus hop-by-hop ones, for the client. */
export function clientResponseHeaders (upstream: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionOptions(upstream.connection)
  const headers: OutgoingHttpHeaders = {}
  for (const name in upstream) {
    const value = upstream[name]
    if (value === undefined || NOT_TO_CLIENT.has(name) || named?.has(name) === true) continue
    headers[name] = value
  }
  return headers
}
