/**
 * A dependency probe: one quick check of one dependency (upstream-ai, Redis,
 * PostgreSQL), bounded by its own deadline, that never throws. health.ts runs
 * them in parallel and caches their results.
 */

export interface ProbeResult {
  ok: boolean
  /** How long the check took, in ms. */
  latency_ms: number
  /** Why it failed: a status, an error code or `timeout`; never a message or a body. */
  error?: string
}

export type Probe = () => Promise<ProbeResult>

/** Thrown when a check has not settled within its deadline. */
export class ProbeTimeoutError extends Error {
  readonly code = 'timeout'
  constructor (timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`)
    this.name = 'ProbeTimeoutError'
  }
}

/** A short, log-safe reason for a failure: its code when it has a string one, else its name. */
export function failureReason (error: unknown): string {
  if (error instanceof ProbeTimeoutError) return 'timeout'
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && /^[\w.-]{1,64}$/.test(code)) return code
  const message = (error as { message?: unknown } | null)?.message
  if (typeof message === 'string' && /timed? ?out/i.test(message)) return 'timeout'
  return error instanceof Error ? error.name : 'error'
}

/**
 * Runs `check` under `timeoutMs` and times it: resolved means ok, a returned
 * string or any rejection means down. A check still running at the deadline
 * is left to finish on its own (its result is ignored).
 */
export function timedProbe (check: (signal: AbortSignal) => Promise<string | undefined>, timeoutMs: number, now: () => number): Probe {
  return async () => {
    const started = now()
    const latency = (): number => Math.round((now() - started) * 100) / 100
    const controller = new AbortController()
    let timer: NodeJS.Timeout | undefined
    try {
      const failure = await Promise.race([
        check(controller.signal),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => {
            const error = new ProbeTimeoutError(timeoutMs)
            controller.abort(error)
            reject(error)
          }, timeoutMs)
        })
      ])
      return failure === undefined ? { ok: true, latency_ms: latency() } : { ok: false, latency_ms: latency(), error: failure }
    } catch (error) {
      return { ok: false, latency_ms: latency(), error: failureReason(error) }
    } finally {
      clearTimeout(timer)
    }
  }
}
