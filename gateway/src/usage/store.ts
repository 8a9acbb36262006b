/**
 * Where the ledger's rows live: the interface the ledger and the usage route
 * use, implemented by pg-store.ts (PostgreSQL). Unit tests give the ledger
 * their own implementation to steer failures; integration tests use the
 * real one on a real PostgreSQL.
 */
import type { UsageCounts, UsageEntry } from './record.js'

/** Rows gathered under one id, written in one transaction. */
export interface UsageBatch {
  /** A UUID; a batch written twice under the same id is counted once. */
  readonly id: string
  /** Distinct (user, day, use case) rows, sorted. */
  readonly entries: readonly UsageEntry[]
}

/** One user's rows of one day, and which of the asked-about batches are already in them. */
export interface StoredDay {
  rows: Array<UsageCounts & { useCase: string }>
  /** Of the batch ids asked about, those already applied (their rows are included in `rows`). */
  applied: ReadonlySet<string>
}

export interface UsageStore {
  /** Creates the tables if missing (schema.ts). */
  migrate: () => Promise<void>
  /**
   * Adds a batch's rows, once: `applied`, or `duplicate` when its id was
   * already applied (an earlier attempt committed although it seemed to fail).
   * Rejects when the outcome is unknown or the write failed; retry with the same batch.
   */
  write: (batch: UsageBatch) => Promise<'applied' | 'duplicate'>
  /** One user's rows of one day, read in one snapshot together with which of `batchIds` are applied. */
  readDay: (userId: string, day: string, batchIds: readonly string[]) => Promise<StoredDay>
  close: () => Promise<void>
}
