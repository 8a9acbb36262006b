/**
 * Request coalescing ("collapsed forwarding", RFC 9111 §4): concurrent runs
 * with the same key in this gateway share one call. The first run starts the
 * call; the others wait for it and get its result, or its error (an error is
 * given to every waiter, and since only the caller's code stores, it stores
 * it for none). Once the call settles the key is free again.
 *
 * Each waiter brings its own AbortSignal (its client's connection). A waiter
 * whose signal fires leaves at once, rejected with the signal's reason; the
 * shared call's own signal fires only when the last waiter has left, so one
 * impatient client never cancels the answer others are waiting for. A call
 * aborted that way is forgotten at once: a run arriving afterwards starts a
 * new call rather than joining a dying one.
 *
 * Store the answer inside `call`, before it resolves: a run arriving just
 * after the call settles then finds it in the cache instead of calling again.
 */

export interface CoalescedResult<T> {
  value: T
  /** True when this run joined a call another run had started (Cache-Status `collapsed`). */
  collapsed: boolean
}

export interface Coalescer<T> {
  /**
   * Runs `call` for `key`, or joins the call already running for it.
   * Rejects with `waiterSignal.reason` when this waiter's signal fires first.
   */
  run: (key: string, call: (signal: AbortSignal) => Promise<T>, waiterSignal?: AbortSignal) => Promise<CoalescedResult<T>>
  /** Keys with a call running (for tests and metrics). */
  readonly inFlight: number
}

interface Waiter<T> {
  collapsed: boolean
  resolve: (result: CoalescedResult<T>) => void
  reject: (reason: unknown) => void
  detach: () => void
}

interface Flight<T> {
  controller: AbortController
  waiters: Set<Waiter<T>>
}

export function createCoalescer<T> (): Coalescer<T> {
  const flights = new Map<string, Flight<T>>()

  const forget = (key: string, flight: Flight<T>): void => {
    if (flights.get(key) === flight) flights.delete(key)
  }

  const start = (key: string, call: (signal: AbortSignal) => Promise<T>): Flight<T> => {
    const flight: Flight<T> = { controller: new AbortController(), waiters: new Set() }
    flights.set(key, flight)
    let settled: Promise<T>
    try {
      settled = Promise.resolve(call(flight.controller.signal))
    } catch (error) {
      settled = Promise.reject(error)
    }
    const finish = (deliver: (waiter: Waiter<T>) => void): void => {
      forget(key, flight)
      for (const waiter of flight.waiters) {
        waiter.detach()
        deliver(waiter)
      }
      flight.waiters.clear()
    }
    settled.then(
      (value) => { finish((waiter) => waiter.resolve({ value, collapsed: waiter.collapsed })) },
      (error: unknown) => { finish((waiter) => waiter.reject(error)) }
    )
    return flight
  }

  const join = (key: string, flight: Flight<T>, collapsed: boolean, signal: AbortSignal | undefined): Promise<CoalescedResult<T>> =>
    new Promise((resolve, reject) => {
      const waiter: Waiter<T> = { collapsed, resolve, reject, detach: () => {} }
      flight.waiters.add(waiter)
      if (signal === undefined) return
      const onAbort = (): void => {
        flight.waiters.delete(waiter)
        reject(signal.reason)
        if (flight.waiters.size === 0) {
          forget(key, flight)
          flight.controller.abort(new DOMException('Every client waiting for this call has gone.', 'AbortError'))
        }
      }
      signal.addEventListener('abort', onAbort, { once: true })
      waiter.detach = () => { signal.removeEventListener('abort', onAbort) }
    })

  return {
    get inFlight () { return flights.size },
    async run (key, call, waiterSignal) {
      if (waiterSignal?.aborted === true) throw waiterSignal.reason
      const running = flights.get(key)
      return await join(key, running ?? start(key, call), running !== undefined, waiterSignal)
    }
  }
}
