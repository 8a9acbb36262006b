/**
 * Usage gathered in memory, one entry per (user, day, use case), under the
 * id of the batch it will be written as. The id is chosen when the
 * aggregate starts, not when it is written, so a reader can ask PostgreSQL
 * whether what it saw in memory has been written since (usage-reader.ts).
 */
import { randomUUID } from 'node:crypto'
import type { UsageCounts, UsageEntry } from './record.js'

export class UsageAggregate {
  /** The batch id these rows are written under (ai_usage_batches.batch_id). */
  readonly id: string
  /** By user, then by `day use_case`: a reader looks up one user's rows. */
  readonly #byUser = new Map<string, Map<string, UsageEntry>>()
  #size = 0

  constructor (id: string = randomUUID()) {
    this.id = id
  }

  /** Distinct (user, day, use case) rows. */
  get size (): number {
    return this.#size
  }

  /** True when adding `entry` would not need a new row. */
  has (entry: UsageEntry): boolean {
    return this.#byUser.get(entry.userId)?.has(rowKey(entry)) === true
  }

  add (entry: UsageEntry): void {
    let rows = this.#byUser.get(entry.userId)
    if (rows === undefined) {
      rows = new Map()
      this.#byUser.set(entry.userId, rows)
    }
    const key = rowKey(entry)
    const row = rows.get(key)
    if (row === undefined) {
      rows.set(key, { ...entry })
      this.#size++
      return
    }
    row.requests += entry.requests
    row.tokens += entry.tokens
    row.cachedRequests += entry.cachedRequests
  }

  /** One user's rows for one day, by use case. */
  forUser (userId: string, day: string): Array<UsageCounts & { useCase: string }> {
    const rows = this.#byUser.get(userId)
    if (rows === undefined) return []
    const found: Array<UsageCounts & { useCase: string }> = []
    for (const row of rows.values()) {
      if (row.day === day) found.push({ useCase: row.useCase, requests: row.requests, tokens: row.tokens, cachedRequests: row.cachedRequests })
    }
    return found
  }

  /** Every row, sorted by (user, day, use case) so that concurrent writers lock rows in the same order. */
  entries (): UsageEntry[] {
    const all: UsageEntry[] = []
    for (const rows of this.#byUser.values()) for (const row of rows.values()) all.push(row)
    return all.sort(compareKeys)
  }

  /** Sums over every row (for logs of what was lost). */
  totals (): UsageCounts {
    const sum = { requests: 0, tokens: 0, cachedRequests: 0 }
    for (const rows of this.#byUser.values()) {
      for (const row of rows.values()) {
        sum.requests += row.requests
        sum.tokens += row.tokens
        sum.cachedRequests += row.cachedRequests
      }
    }
    return sum
  }
}

function rowKey (entry: { day: string; useCase: string }): string {
  return `${entry.day} ${entry.useCase}`
}

const compare = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

function compareKeys (a: UsageEntry, b: UsageEntry): number {
  return compare(a.userId, b.userId) || compare(a.day, b.day) || compare(a.useCase, b.useCase)
}
