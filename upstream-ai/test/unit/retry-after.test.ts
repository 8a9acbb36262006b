// Reading the provider's retry hints: retry-after-ms wins, retry-after may be seconds or an HTTP date, nonsense is ignored.
import t from 'tap'
import { retryAfterMsFrom } from '../../src/providers/openai.js'

const now = Date.parse('2026-01-01T00:00:00Z')

t.test('retry-after-ms, in milliseconds, rounded up', async (t) => {
  t.equal(retryAfterMsFrom({ 'retry-after-ms': '250.2' }, now), 251)
  t.equal(retryAfterMsFrom({ 'retry-after-ms': '100', 'retry-after': '9' }, now), 100)
})

t.test('retry-after in seconds', async (t) => {
  t.equal(retryAfterMsFrom({ 'retry-after': '3' }, now), 3000)
  t.equal(retryAfterMsFrom({ 'retry-after': '0.5' }, now), 500)
})

t.test('retry-after as an HTTP date', async (t) => {
  t.equal(retryAfterMsFrom({ 'retry-after': 'Thu, 01 Jan 2026 00:00:04 GMT' }, now), 4000)
  t.equal(retryAfterMsFrom({ 'retry-after': 'Wed, 31 Dec 2025 23:59:00 GMT' }, now), 0, 'a past date means now')
})

t.test('absent or nonsense', async (t) => {
  t.equal(retryAfterMsFrom({}, now), undefined)
  t.equal(retryAfterMsFrom({ 'retry-after': 'soon' }, now), undefined)
  t.equal(retryAfterMsFrom({ 'retry-after-ms': '-5' }, now), undefined)
})
