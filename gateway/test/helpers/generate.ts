/**
 * Test upstream behaviours that answer like upstream-ai's generate, and the
 * small things the rate-limit and cache tests share: a generate body, a
 * burst of calls, and a parsed rate-limit header set.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { Behaviour } from './upstream.js'
import type { Reply } from './gateway.js'

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

export interface GenerateAnswerOptions {
  /** Delay before answering, in ms (makes concurrent requests overlap). @default 0 */
  delayMs?: number
  /** Length of the answer text (pads it; an oversized answer). @default short */
  textBytes?: number
}

/**
 * Answers 200 `{text, usage, meta}` as upstream-ai does, with the request id
 * and trace it received. The text names the call's number (1-based), so a
 * test can tell a stored answer from a fresh one.
 */
export function answerGenerate (options: GenerateAnswerOptions = {}): Behaviour {
  let calls = 0
  return async (_req, res, received) => {
    const call = ++calls
    if ((options.delayMs ?? 0) > 0) await sleep(options.delayMs!)
    if (res.destroyed) return
    const request = JSON.parse(received.body.toString('utf8') || '{}') as { use_case?: string; options?: { model?: string } }
    const base = `Answer #${call}.`
    const text = options.textBytes === undefined ? base : base.padEnd(options.textBytes, '*')
    const traceparent = received.headers.traceparent
    const payload = JSON.stringify({
      text,
      usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15 },
      meta: {
        request_id: received.headers['x-request-id'],
        trace_id: typeof traceparent === 'string' ? traceparent.split('-')[1] : undefined,
        provider: 'test',
        model: request.options?.model ?? 'test-1',
        use_case: request.use_case,
        latency_ms: 1,
        cached: false
      }
    })
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) })
    res.end(payload)
  }
}

/** Answers an upstream-ai error envelope after `delayMs`. */
export function answerError (status: number, type: string, delayMs = 0): Behaviour {
  return async (_req, res, received) => {
    if (delayMs > 0) await sleep(delayMs)
    if (res.destroyed) return
    const payload = JSON.stringify({ error: { type, message: `upstream says ${type}` }, meta: { request_id: received.headers['x-request-id'] } })
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload) })
    res.end(payload)
  }
}

/** A cacheable generate body (temperature absent: 0). */
export function generateBody (sign = 'leo', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { use_case: 'horoscope_daily', input: { sign, date: '2026-01-01' }, ...extra }
}

/** The rate-limit headers of an answer (lower-case names as node reports them). */
export function rateLimitHeadersOf (headers: IncomingHttpHeaders): Record<string, string | undefined> {
  const pick = (name: string): string | undefined => {
    const value = headers[name]
    return Array.isArray(value) ? value.join(', ') : value
  }
  return {
    limit: pick('x-ratelimit-limit'),
    remaining: pick('x-ratelimit-remaining'),
    reset: pick('x-ratelimit-reset'),
    policy: pick('ratelimit-policy'),
    ratelimit: pick('ratelimit'),
    retryAfter: pick('retry-after')
  }
}

/** Status counts of a set of replies, e.g. `{ 200: 20, 429: 180 }`. */
export function statusCounts (replies: Reply[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const reply of replies) counts[reply.status] = (counts[reply.status] ?? 0) + 1
  return counts
}
