// The completion line: createLineSanitizer gives, for any record, exactly what sanitising the whole record gives (redacted keys, cut strings, key order).
import t from 'tap'
import { createSanitizer, REDACTED, type Sanitizer } from '../../../common/src/sanitize.js'
import { createLineSanitizer, type CompletionRecord } from '../../src/pipeline/completion-log.js'
import { completionRecord } from '../helpers/completion-record.js'

const record = (overrides: Partial<CompletionRecord> = {}): CompletionRecord => completionRecord({ tokens_used: 42, latency_ms: 1.25, upstream_latency_ms: 0.75, ...overrides })

const records: CompletionRecord[] = [
  record(),
  record({ user_id: null, use_case: null, upstream_latency_ms: null, tokens_used: null }),
  record({ http_status: 502, status: 'error', error_type: 'UPSTREAM_UNAVAILABLE' }),
  record({ use_case: 'u'.repeat(1000), error_type: 'E'.repeat(300), status: 'error' }),
  // A field added later keeps the line equal to the whole record sanitised, sensitive name included.
  { ...record(), session_token: 'abc', extra: 'kept' } as unknown as CompletionRecord
]

t.test('the line equals the whole record sanitised, key order included', async (t) => {
  for (const sanitize of [createSanitizer(), createSanitizer({ extraKeys: ['user_id', 'use-case'] }), createSanitizer({ maxStringLength: 8 })]) {
    const lineOf = createLineSanitizer(sanitize)
    for (const each of records) {
      const line = lineOf(each)
      const expected = sanitize(each) as Record<string, unknown>
      t.same(line, expected)
      t.same(Object.keys(line), Object.keys(expected))
    }
  }
})

t.test('redaction keys configured for the service apply to the line', async (t) => {
  const line = createLineSanitizer(createSanitizer({ extraKeys: ['user_id'] }))(record())
  t.equal(line.user_id, REDACTED)
  t.equal(line.route, '/v1/ai/generate')
})

t.test('a sanitizer that does not keep flat objects sanitises each record whole', async (t) => {
  const calls: unknown[] = []
  const odd: Sanitizer = (value) => {
    calls.push(value)
    return typeof value === 'object' && value !== null ? { summary: Object.keys(value).length } : value
  }
  const line = createLineSanitizer(odd)(record())
  t.same(line, { summary: 17 })
  t.same(calls.at(-1), record())
})

t.test('with the service\'s sanitizer a line passes only its strings through it, and an unchanged record is logged as it is', async (t) => {
  const sanitize = createSanitizer()
  const objects: unknown[] = []
  const counting: Sanitizer = (value) => {
    if (typeof value === 'object' && value !== null) objects.push(value)
    return sanitize(value)
  }
  const lineOf = createLineSanitizer(counting)
  lineOf(record())
  objects.length = 0
  const each = record()
  t.equal(lineOf(each), each)
  const cut = record({ use_case: 'u'.repeat(1000) })
  t.not(lineOf(cut), cut)
  t.same(objects, [], 'no record went through the sanitizer whole')
})
