/**
 * Draining and graceful shutdown. On SIGTERM or SIGINT the gateway keeps
 * its listener open so load balancers can read `/health` = 503, answers new
 * `/v1/ai/*` requests with 503 SERVICE_UNAVAILABLE and `Connection: close`,
 * lets in-flight requests and streams finish within the grace period, then
 * ends the rest, closes every connection, runs the closers in order (the
 * upstream pools, the rate limiter, then Redis) and returns so main can exit 0.
 */
import type { Server, ServerResponse } from 'node:http'
import { ApiError } from '../../common/src/errors.js'
import type { Logger } from '../../common/src/logger.js'
import type { RequestContext } from './context.js'
import { InFlight } from './in-flight.js'

/** Something to close at the end of a shutdown, in list order. */
export interface Closer {
  name: string
  close: () => Promise<void> | void
  /** How long shutdown waits for it, in ms. @default CLOSER_TIMEOUT_MS (2000) */
  timeoutMs?: number
}

/** How long one closer may take before shutdown moves on, in ms. */
const CLOSER_TIMEOUT_MS = 2000

/** The answer to new work while draining (and to work cut at the end of the grace period). */
export function drainingError (): ApiError {
  return new ApiError('SERVICE_UNAVAILABLE', 'The gateway is shutting down; retry on another instance.', { headers: { connection: 'close' } })
}

/** Tracks in-flight requests and whether the gateway is draining. */
export class Drain {
  #draining = false
  /** Not a Set of contexts: see InFlight (a per-request Set entry got every request promoted by the GC). */
  readonly #inFlight = new InFlight<RequestContext>()
  /** Set while someone waits in whenIdle: called when the last request closes. */
  #onIdle: (() => void) | undefined
  /** Set while someone waits in whenIdle: stops the wait early. */
  #forceIdle: (() => void) | undefined

  get draining (): boolean {
    return this.#draining
  }

  get inFlight (): number {
    return this.#inFlight.size
  }

  /** Counts a request until its response closes. */
  track (ctx: RequestContext, res: ServerResponse): void {
    const slot = this.#inFlight.add(ctx)
    // `on`, not `once`: a response closes once (Node guards it), and once() allocates a wrapper per request.
    res.on('close', () => {
      this.#inFlight.delete(slot)
      if (this.#inFlight.size === 0) this.#onIdle?.()
    })
  }

  begin (): void {
    this.#draining = true
  }

  /** Resolves true once nothing is in flight, false if `timeoutMs` passes (or `force` is called) first. */
  async whenIdle (timeoutMs: number): Promise<boolean> {
    if (this.#inFlight.size === 0) return true
    return await new Promise<boolean>((resolve) => {
      const finish = (idle: boolean): void => {
        clearTimeout(timer)
        this.#onIdle = undefined
        this.#forceIdle = undefined
        resolve(idle)
      }
      const timer = setTimeout(() => { finish(false) }, timeoutMs)
      this.#onIdle = () => { finish(true) }
      this.#forceIdle = () => { finish(false) }
    })
  }

  /** Stops waiting: a second signal means "now". */
  force (): void {
    this.#forceIdle?.()
  }

  /** Ends what is still running: streams get `event: error`, waiting requests a 503. */
  abortAll (): void {
    const error = drainingError()
    for (const ctx of this.#inFlight) ctx.abort?.(error)
  }
}

export interface ShutdownOptions {
  server: Server
  drain: Drain
  graceMs: number
  closers: readonly Closer[]
  logger: Logger
}

async function withTimeout (work: Promise<void> | void, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([work, new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

export async function shutdown (options: ShutdownOptions): Promise<void> {
  const { server, drain, logger } = options
  drain.begin()
  logger.info({ in_flight: drain.inFlight, grace_ms: options.graceMs }, 'draining')
  const idle = await drain.whenIdle(options.graceMs)
  if (!idle) {
    logger.warn({ in_flight: drain.inFlight }, 'grace period over: ending the requests still in flight')
    drain.abortAll()
  }
  // Let aborted answers flush their last bytes before every socket goes.
  await drain.whenIdle(idle ? 0 : 500)
  await new Promise<void>((resolve) => {
    server.close(() => { resolve() })
    server.closeAllConnections()
  })
  for (const closer of options.closers) {
    try {
      await withTimeout(closer.close(), closer.timeoutMs ?? CLOSER_TIMEOUT_MS)
    } catch (error) {
      logger.warn({ closer: closer.name, err: error }, 'closer failed')
    }
  }
  logger.info('shutdown complete')
}

/**
 * SIGTERM/SIGINT start one shutdown; a second signal skips what is left of
 * the grace period. `onDone` gets the shutdown's outcome (main exits then).
 */
export function handleSignals (start: () => Promise<void>, drain: Drain, onDone: (error?: unknown) => void, target: NodeJS.Process = process): void {
  let started = false
  const onSignal = (): void => {
    if (started) {
      drain.force()
      return
    }
    started = true
    start().then(() => { onDone() }, onDone)
  }
  target.on('SIGTERM', onSignal)
  target.on('SIGINT', onSignal)
}
