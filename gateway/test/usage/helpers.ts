/**
 * Shared by the usage tests: a completion record to vary, a log sink, and
 * a UsageStore kept in memory whose failures the test steers (for the
 * ledger's unit tests only; the PostgreSQL store is tested on PostgreSQL).
 */
import { Writable } from 'node:stream'
import { createLogger, type Logger } from '../../../common/src/logger.js'
import type { CompletionRecord } from '../../src/pipeline/completion-log.js'
import { completionRecord } from '../helpers/completion-record.js'
import type { StoredDay, UsageBatch, UsageStore } from '../../src/usage/store.js'

export const completion = (overrides: Partial<CompletionRecord> = {}): CompletionRecord => completionRecord({ request_id: 'r1', ...overrides })

export function logSink (level = 'debug'): { logger: Logger; lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, any>)
      callback()
    }
  })
  return { logger: createLogger({ service: 'ai-gateway', environment: 'test', level }, stream), lines }
}

/** A store in memory: `fail` makes the next calls reject; `commitThenFail` applies a batch and then rejects (an unknown COMMIT outcome). */
export class MemoryUsageStore implements UsageStore {
  readonly rows = new Map<string, { requests: number; tokens: number; cachedRequests: number }>()
  readonly applied = new Set<string>()
  readonly writes: UsageBatch[] = []
  migrations = 0
  fail: Error | undefined
  commitThenFail = false

  async migrate (): Promise<void> {
    if (this.fail !== undefined) throw this.fail
    this.migrations++
  }

  async write (batch: UsageBatch): Promise<'applied' | 'duplicate'> {
    this.writes.push(batch)
    if (this.fail !== undefined) throw this.fail
    if (this.applied.has(batch.id)) return 'duplicate'
    this.applied.add(batch.id)
    for (const entry of batch.entries) {
      const key = `${entry.userId} ${entry.day} ${entry.useCase}`
      const row = this.rows.get(key) ?? { requests: 0, tokens: 0, cachedRequests: 0 }
      row.requests += entry.requests
      row.tokens += entry.tokens
      row.cachedRequests += entry.cachedRequests
      this.rows.set(key, row)
    }
    if (this.commitThenFail) {
      this.commitThenFail = false
      throw Object.assign(new Error('Connection terminated unexpectedly'), { code: undefined })
    }
    return 'applied'
  }

  async readDay (userId: string, day: string, batchIds: readonly string[]): Promise<StoredDay> {
    if (this.fail !== undefined) throw this.fail
    const rows: StoredDay['rows'] = []
    for (const [key, row] of this.rows) {
      const [user, rowDay, useCase] = key.split(' ')
      if (user === userId && rowDay === day) rows.push({ useCase: useCase ?? '', ...row })
    }
    return { rows, applied: new Set(batchIds.filter((id) => this.applied.has(id))) }
  }

  async close (): Promise<void> {}

  total (): { requests: number; tokens: number; cachedRequests: number } {
    const sum = { requests: 0, tokens: 0, cachedRequests: 0 }
    for (const row of this.rows.values()) {
      sum.requests += row.requests
      sum.tokens += row.tokens
      sum.cachedRequests += row.cachedRequests
    }
    return sum
  }
}
