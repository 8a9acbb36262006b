/**
 * Request ids and W3C trace context. An incoming `X-Request-Id` is kept when
 * it is sane, otherwise one is generated; a valid `traceparent` is continued,
 * otherwise a new trace starts.
 */
import { randomFillSync, randomUUID } from 'node:crypto'

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function requestIdFrom (header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_REQUEST_ID.test(header) ? header : randomUUID()
}

export interface TraceContext {
  /** 32 lowercase hex characters. */
  traceId: string
  /** This hop's span id: 16 lowercase hex characters. */
  spanId: string
  /** The caller's span id, when the trace was continued. */
  parentSpanId: string | undefined
  /** Two hex characters, kept from the caller (sampled = 01 for new traces). */
  flags: string
}

// version 00: "00-<trace-id>-<parent-id>-<flags>"; later versions may append fields.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

function isAllZero (hex: string): boolean {
  return /^0+$/.test(hex)
}

export function parseTraceparent (header: string | string[] | undefined): { traceId: string; parentSpanId: string; flags: string } | undefined {
  if (typeof header !== 'string') return undefined
  const match = TRACEPARENT.exec(header.trim())
  if (match === null) return undefined
  const [, version, traceId, parentSpanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined]
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  if (isAllZero(traceId) || isAllZero(parentSpanId)) return undefined
  return { traceId, parentSpanId, flags }
}

/** Random bytes drawn from the CSPRNG a pool at a time: 24 per request, one call into OpenSSL every 170 requests. */
const POOL_BYTES = 4096
let pool = Buffer.alloc(0)
let poolOffset = 0

/**
 * `bytes` fresh random bytes as lowercase hex. The same CSPRNG as
 * randomBytes (each byte handed out once), but filled in batches, as Node's
 * randomUUID does: one randomBytes call per id cost more than the rest of
 * the request context together.
 */
export function randomHex (bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    // Never Buffer's shared pool: these bytes are not to share memory with anything else.
    pool = randomFillSync(Buffer.allocUnsafeSlow(Math.max(POOL_BYTES, bytes)))
    poolOffset = 0
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes)
  poolOffset += bytes
  return hex
}

/** Continues the caller's trace with a new span, or starts a new trace. */
export function traceContextFrom (header: string | string[] | undefined): TraceContext {
  const parent = parseTraceparent(header)
  const spanId = randomHex(8)
  if (parent !== undefined) return { traceId: parent.traceId, spanId, parentSpanId: parent.parentSpanId, flags: parent.flags }
  return { traceId: randomHex(16), spanId, parentSpanId: undefined, flags: '01' }
}

export function formatTraceparent (trace: TraceContext): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.flags}`
}
