/**
 * A user's usage of one day as GET /v1/ai/usage shows it: the rows in
 * PostgreSQL plus what the ledger still holds in memory, so it is current.
 *
 * Counted once, never twice nor missed: the memory rows are taken first,
 * with the ids of the batches they will be written under; then one
 * statement reads the stored rows and which of those ids are already
 * applied (one snapshot). Memory rows whose batch is applied are in the
 * stored rows already; the others are added. PostgreSQL unreachable: the
 * memory rows alone, marked `unavailable`.
 */
import type { UsageLedger } from './ledger.js'
import { describeStoreError } from './ledger.js'
import type { UsageCounts } from './record.js'
import type { UsageStore } from './store.js'

export interface DayUsage {
  /** `ok`: stored and pending rows; `unavailable`: PostgreSQL could not be read, pending rows only. */
  ledger: 'ok' | 'unavailable'
  byUseCase: Map<string, UsageCounts>
  /** Why PostgreSQL could not be read (an error code), for the log. */
  error?: string
}

function addTo (byUseCase: Map<string, UsageCounts>, row: UsageCounts & { useCase: string }): void {
  const sum = byUseCase.get(row.useCase)
  if (sum === undefined) {
    byUseCase.set(row.useCase, { requests: row.requests, tokens: row.tokens, cachedRequests: row.cachedRequests })
    return
  }
  sum.requests += row.requests
  sum.tokens += row.tokens
  sum.cachedRequests += row.cachedRequests
}

export async function readDayUsage (store: UsageStore, ledger: UsageLedger, userId: string, day: string): Promise<DayUsage> {
  const held = ledger.held(userId, day)
  const byUseCase = new Map<string, UsageCounts>()
  try {
    const stored = await store.readDay(userId, day, held.map((part) => part.batchId))
    for (const row of stored.rows) addTo(byUseCase, row)
    for (const part of held) if (!stored.applied.has(part.batchId)) for (const row of part.rows) addTo(byUseCase, row)
    return { ledger: 'ok', byUseCase }
  } catch (error) {
    for (const part of held) for (const row of part.rows) addTo(byUseCase, row)
    return { ledger: 'unavailable', byUseCase, error: describeStoreError(error) }
  }
}
