/**
 * The usage ledger's metrics, registered on the process's registry
 * (metrics.ts's `registry`): what it drops, how its writes go, and what it
 * holds in memory now (read at scrape time, so it cannot drift).
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { LedgerMetricsSink, LedgerState } from './ledger.js'

export function createLedgerMetrics (registry: Registry, state: () => LedgerState): LedgerMetricsSink {
  const registers = [registry]
  const droppedRequests = new Counter({
    name: 'ai_gateway_usage_dropped_requests_total',
    help: 'Requests whose usage the ledger dropped because AI_GATEWAY_USAGE_MAX_PENDING_ROWS rows were already held in memory (or that settled after shutdown began).',
    registers
  })
  const droppedTokens = new Counter({
    name: 'ai_gateway_usage_dropped_tokens_total',
    help: 'Tokens of the usage the ledger dropped (see ai_gateway_usage_dropped_requests_total).',
    registers
  })
  const writes = new Counter({
    name: 'ai_gateway_usage_writes_total',
    help: 'Batches the usage ledger wrote to PostgreSQL, by outcome: applied; duplicate (a retried batch an earlier attempt had committed); failed (kept and retried).',
    labelNames: ['outcome'] as const,
    registers
  })
  new Gauge({
    name: 'ai_gateway_usage_pending_rows',
    help: '(user, day, use case) rows the usage ledger holds in memory, not yet written to PostgreSQL.',
    registers,
    collect () { this.set(state().pendingRows) }
  })
  droppedRequests.inc(0)
  droppedTokens.inc(0)
  for (const outcome of ['applied', 'duplicate', 'failed']) writes.inc({ outcome }, 0)
  return {
    dropped: (counts) => {
      droppedRequests.inc(counts.requests)
      droppedTokens.inc(counts.tokens)
    },
    written: (outcome) => { writes.inc({ outcome }) }
  }
}
