/**
 * The usage ledger's writer: gathers settled usage in memory per (user,
 * day, use case) and writes it to the store in batches, off the request
 * path. `add` is synchronous and never waits on PostgreSQL.
 *
 * - A batch is written every `flushMs`, or as soon as `flushRows` distinct
 *   rows are pending; one batch at a time.
 * - A batch that fails is kept as it is, under its id, and retried with
 *   backoff; new usage gathers meanwhile in the next aggregate. Why not
 *   merge it back into the pending rows: a batch whose COMMIT outcome is
 *   unknown may have been applied, and only its unchanged id lets the store
 *   recognise it (pg-store.ts) instead of counting it twice.
 * - Memory is bounded: the pending rows plus the failed batch's rows are at
 *   most `maxPendingRows`. Usage for a row already held is always added (it
 *   costs no memory); usage that would need a new row past the cap is
 *   dropped, counted in a metric and logged at error, with totals, at most
 *   once a second.
 * - The schema is migrated before the first write; until that succeeds
 *   (PostgreSQL down at start) it is retried on the same backoff.
 * - `close` stops the timer and writes what is left within its deadline;
 *   whatever could not be written is logged at error with its totals.
 */
import type { Logger } from '../../../common/src/logger.js'
import type { CompletionRecord } from '../pipeline/completion-log.js'
import { UsageAggregate } from './aggregate.js'
import { usageOf, type UsageCounts, type UsageEntry } from './record.js'
import type { UsageBatch, UsageStore } from './store.js'

export const USAGE_LEDGER_DEFAULTS = Object.freeze({
  flushMs: 1000,
  flushRows: 1000,
  maxPendingRows: 100_000,
  retryMinMs: 500,
  retryMaxMs: 30_000
})

/** How often drops are reported in the log, at most, in ms. */
const DROP_REPORT_MS = 1000
/** Pause between attempts while closing, in ms. */
const CLOSE_RETRY_MS = 200

/** Counters the ledger feeds (usage/metrics.ts). */
export interface LedgerMetricsSink {
  dropped: (counts: UsageCounts) => void
  written: (outcome: 'applied' | 'duplicate' | 'failed') => void
}

export interface UsageLedgerOptions {
  store: UsageStore
  logger: Logger
  /** Wall clock in ms: which UTC day usage belongs to. @default Date.now */
  clock?: () => number
  /** AI_GATEWAY_USAGE_FLUSH_MS. @default 1000 */
  flushMs?: number
  /** AI_GATEWAY_USAGE_FLUSH_ROWS. @default 1000 */
  flushRows?: number
  /** AI_GATEWAY_USAGE_MAX_PENDING_ROWS. @default 100000 */
  maxPendingRows?: number
  /** First retry delay after a failure, doubled on each failure, in ms. @default 500 */
  retryMinMs?: number
  /** Longest retry delay, in ms. @default 30000 */
  retryMaxMs?: number
  metrics?: LedgerMetricsSink | undefined
}

/** Rows held in memory under one batch id, for a reader to add to what PostgreSQL has. */
export interface HeldRows {
  batchId: string
  rows: Array<UsageCounts & { useCase: string }>
}

export interface LedgerState {
  /** The schema is in place (migrated since start). */
  ready: boolean
  /** The last attempt to reach PostgreSQL failed. */
  failing: boolean
  /** Rows held in memory: pending plus a batch waiting to be retried. */
  pendingRows: number
}

export interface UsageLedger {
  /** Starts migrating and the flush timer. */
  start: () => void
  /** Adds a completion record's usage, if it is usage (record.ts). Never throws, never waits. */
  record: (record: CompletionRecord) => void
  add: (entry: UsageEntry) => void
  /** One user's rows of one day still in memory, under their batch ids. */
  held: (userId: string, day: string) => HeldRows[]
  state: () => LedgerState
  /** Stops and writes what is left, within `timeoutMs`. */
  close: (timeoutMs: number) => Promise<void>
}

/** The SQLSTATE or Node error code, or a short message: never a query, a value or the URL. */
export function describeStoreError (error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  if (typeof code === 'string' && code !== '') return code
  return typeof message === 'string' ? message.slice(0, 120) : 'error'
}

// Not unref'd: while closing, these timers may be all that keeps the process alive until the last write.
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

interface SealedBatch extends UsageBatch {
  /** The same rows, for readers. */
  readonly aggregate: UsageAggregate
}

export function createUsageLedger (options: UsageLedgerOptions): UsageLedger {
  const { store, logger, metrics } = options
  const clock = options.clock ?? Date.now
  const flushMs = options.flushMs ?? USAGE_LEDGER_DEFAULTS.flushMs
  const flushRows = options.flushRows ?? USAGE_LEDGER_DEFAULTS.flushRows
  const maxPendingRows = options.maxPendingRows ?? USAGE_LEDGER_DEFAULTS.maxPendingRows
  const retryMinMs = options.retryMinMs ?? USAGE_LEDGER_DEFAULTS.retryMinMs
  const retryMaxMs = options.retryMaxMs ?? USAGE_LEDGER_DEFAULTS.retryMaxMs

  let pending = new UsageAggregate()
  let sealed: SealedBatch | undefined
  let ready = false
  let failures = 0
  let started = false
  let closed = false
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  const dropped = { requests: 0, tokens: 0, cachedRequests: 0 }
  let dropReport: NodeJS.Timeout | undefined

  const heldRows = (): number => pending.size + (sealed?.entries.length ?? 0)

  const reportDrops = (): void => {
    dropReport = undefined
    if (dropped.requests === 0) return
    logger.error({
      dropped_requests: dropped.requests,
      dropped_tokens: dropped.tokens,
      dropped_cached_requests: dropped.cachedRequests,
      pending_rows: heldRows(),
      max_pending_rows: maxPendingRows
    }, 'usage ledger full: usage dropped')
    dropped.requests = 0
    dropped.tokens = 0
    dropped.cachedRequests = 0
  }

  const drop = (counts: UsageCounts): void => {
    dropped.requests += counts.requests
    dropped.tokens += counts.tokens
    dropped.cachedRequests += counts.cachedRequests
    metrics?.dropped(counts)
    dropReport ??= setTimeout(reportDrops, DROP_REPORT_MS).unref()
  }

  const schedule = (delayMs: number): void => {
    clearTimeout(timer)
    timer = closed ? undefined : setTimeout(tick, delayMs).unref()
  }

  const backoffMs = (): number => {
    const base = Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(failures - 1, 30))
    // Jitter, so replicas that lost PostgreSQL together do not come back in step.
    return Math.round(base * (0.75 + Math.random() * 0.5))
  }

  /** One migrate-and-write attempt; true when nothing failed. */
  const attempt = async (): Promise<boolean> => {
    try {
      if (!ready) {
        await store.migrate()
        ready = true
        logger.info({ flush_ms: flushMs, flush_rows: flushRows, max_pending_rows: maxPendingRows }, 'usage ledger ready')
      }
      if (sealed === undefined && pending.size > 0) {
        const aggregate = pending
        pending = new UsageAggregate()
        sealed = { id: aggregate.id, entries: aggregate.entries(), aggregate }
      }
      if (sealed !== undefined) {
        const outcome = await store.write(sealed)
        metrics?.written(outcome)
        if (outcome === 'duplicate') logger.info({ batch_id: sealed.id, rows: sealed.entries.length }, 'usage ledger: batch was already written (an earlier attempt committed)')
        sealed = undefined
      }
      if (failures > 0) logger.info({ failed_attempts: failures, pending_rows: heldRows() }, 'usage ledger: PostgreSQL reachable again')
      failures = 0
      return true
    } catch (error) {
      failures++
      if (sealed !== undefined) metrics?.written('failed')
      // The table went away (dropped by hand, another database): create it again before the next write.
      if ((error as { code?: unknown }).code === '42P01') ready = false
      const details = { error: describeStoreError(error), failed_attempts: failures, pending_rows: heldRows(), schema_ready: ready }
      if (failures === 1) logger.warn(details, 'usage ledger: PostgreSQL unavailable; usage is kept in memory and retried')
      else logger.debug(details, 'usage ledger: retry failed')
      return false
    }
  }

  function tick (): void {
    timer = undefined
    if (running !== undefined || closed) return
    running = attempt().then((ok) => {
      running = undefined
      if (ok) schedule(pending.size >= flushRows ? 0 : flushMs)
      else schedule(backoffMs())
    })
  }

  const add = (entry: UsageEntry): void => {
    if (closed || (!pending.has(entry) && heldRows() >= maxPendingRows)) {
      drop(entry)
      return
    }
    pending.add(entry)
    // Early write: only when nothing is running and no failed batch waits for its backoff.
    if (started && pending.size >= flushRows && running === undefined && sealed === undefined && failures === 0) schedule(0)
  }

  return {
    start: () => {
      if (started || closed) return
      started = true
      schedule(0)
    },
    record: (record) => {
      try {
        const entry = usageOf(record, clock())
        if (entry !== undefined) add(entry)
      } catch (error) {
        // Never let bookkeeping break the completion log.
        logger.error({ error: describeStoreError(error) }, 'usage ledger: could not record usage')
      }
    },
    add,
    held: (userId, day) => {
      const held: HeldRows[] = []
      if (sealed !== undefined) held.push({ batchId: sealed.id, rows: sealed.aggregate.forUser(userId, day) })
      held.push({ batchId: pending.id, rows: pending.forUser(userId, day) })
      return held.filter((part) => part.rows.length > 0)
    },
    state: () => ({ ready, failing: failures > 0, pendingRows: heldRows() }),
    close: async (timeoutMs) => {
      if (closed) return
      closed = true
      clearTimeout(timer)
      timer = undefined
      const deadline = performance.now() + timeoutMs
      const remaining = (): number => deadline - performance.now()
      const within = async (work: Promise<unknown>): Promise<void> => {
        let expiry: NodeJS.Timeout | undefined
        await Promise.race([work, new Promise((resolve) => { expiry = setTimeout(resolve, Math.max(0, remaining())) })])
        clearTimeout(expiry)
      }
      if (running !== undefined) await within(running)
      while (running === undefined && (sealed !== undefined || pending.size > 0) && remaining() > 0) {
        const work = attempt()
        running = work.then(() => { running = undefined })
        await within(running)
        if (running !== undefined || sealed !== undefined || pending.size > 0) await sleep(Math.min(CLOSE_RETRY_MS, Math.max(0, remaining())))
      }
      clearTimeout(dropReport)
      reportDrops()
      const lost = new UsageAggregate()
      for (const part of [sealed?.aggregate, pending]) for (const entry of part?.entries() ?? []) lost.add(entry)
      if (lost.size > 0) {
        const totals = lost.totals()
        logger.error({ rows: lost.size, requests: totals.requests, tokens: totals.tokens, cached_requests: totals.cachedRequests },
          'usage ledger: shutting down with usage not written to PostgreSQL')
      } else {
        logger.info('usage ledger: everything written')
      }
    }
  }
}
