/** A completion record of a successful generate request, to vary in unit tests. */
import type { CompletionRecord } from '../../src/pipeline/completion-log.js'

export function completionRecord (overrides: Partial<CompletionRecord> = {}): CompletionRecord {
  return {
    request_id: 'req-1',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    user_id: 'alice',
    use_case: 'horoscope_daily',
    route: '/v1/ai/generate',
    method: 'POST',
    http_status: 200,
    status: 'success',
    latency_ms: 12,
    upstream_latency_ms: 10,
    tokens_used: 100,
    cached: false,
    cache: null,
    collapsed: false,
    rate_limited: false,
    stream: false,
    client_aborted: false,
    ...overrides
  }
}
