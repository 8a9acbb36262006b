/**
 * The cap on concurrent upstream-ai calls (AI_GATEWAY_MAX_CONCURRENT_UPSTREAM).
 * The connection pool (AI_GATEWAY_UPSTREAM_MAX_SOCKETS) queues calls beyond
 * its sockets without bound; this gate bounds that queue. When upstream-ai
 * is frozen or slow, calls pile up to the cap and every further request is
 * refused at once with 503 UPSTREAM_OVERLOADED and `Retry-After: 1`, so
 * neither memory nor the clients' wait grows with the backlog. The proxy
 * stage and the cache stage's own upstream call take a slot each for the
 * life of the upstream exchange; a cache hit, or a request collapsed onto
 * another's call, takes none.
 */
import { ApiError } from '../../common/src/errors.js'

/** Seconds a refused client is told to wait. */
const RETRY_AFTER_SECONDS = 1

export interface UpstreamGate {
  /** A release function when a slot was free (call it once, when the exchange is over), undefined at the cap. */
  tryAcquire: () => (() => void) | undefined
  /** Upstream calls holding a slot now. */
  readonly inFlight: number
  readonly limit: number
}

export function createUpstreamGate (limit: number): UpstreamGate {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`the upstream concurrency limit must be an integer ≥ 1, got ${limit}`)
  let inFlight = 0
  return {
    tryAcquire: () => {
      if (inFlight >= limit) return undefined
      inFlight++
      let released = false
      return () => {
        if (released) return
        released = true
        inFlight--
      }
    },
    get inFlight () { return inFlight },
    limit
  }
}

export function overloadedError (): ApiError {
  return new ApiError('UPSTREAM_OVERLOADED', undefined, {
    extra: { retry_after_ms: RETRY_AFTER_SECONDS * 1000 },
    headers: { 'retry-after': String(RETRY_AFTER_SECONDS) }
  })
}

/** Takes a slot of `gate` (when there is one) or throws UPSTREAM_OVERLOADED; returns its release. */
export function enterUpstream (gate: UpstreamGate | undefined): () => void {
  if (gate === undefined) return () => {}
  const release = gate.tryAcquire()
  if (release === undefined) throw overloadedError()
  return release
}
