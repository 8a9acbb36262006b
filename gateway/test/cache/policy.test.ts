// Cacheability: only POST /v1/ai/generate at effective temperature <= 0; chat and temperature > 0 never; Cache-Control no-cache bypasses the lookup but stores, no-store does neither.
import t from 'tap'
import { cacheability } from '../../src/cache/policy.js'

const GENERATE = { method: 'POST', path: '/v1/ai/generate' }
const body = (options?: Record<string, unknown>): Record<string, unknown> => ({ use_case: 'summary', input: 'x', ...(options === undefined ? {} : { options }) })

t.test('generate at temperature 0 (or absent) is cacheable', async (t) => {
  t.same(cacheability(GENERATE, body(), {}), { kind: 'cacheable' })
  t.same(cacheability(GENERATE, body({}), {}), { kind: 'cacheable' })
  t.same(cacheability(GENERATE, body({ temperature: 0 }), {}), { kind: 'cacheable' })
  t.same(cacheability(GENERATE, body({ temperature: 0, model: 'm', max_tokens: 10 }), {}), { kind: 'cacheable' })
  t.same(cacheability({ method: 'post', path: '/v1/ai/generate?debug=1' }, body(), {}), { kind: 'cacheable' }, 'method case and query string do not matter')
})

t.test('temperature above 0 is never cacheable, nor stored', async (t) => {
  for (const temperature of [0.0001, 0.7, 1, 2]) {
    t.same(cacheability(GENERATE, body({ temperature }), {}), { kind: 'bypass', store: false, reason: 'temperature' }, String(temperature))
  }
  t.same(cacheability(GENERATE, body({ temperature: 0.7 }), { 'cache-control': 'no-cache' }), { kind: 'bypass', store: false, reason: 'temperature' }, 'no-cache does not make it storable')
})

t.test('chat is never cacheable, streaming or not; nor any other route', async (t) => {
  const expected = { kind: 'bypass', store: false, reason: 'route' }
  t.same(cacheability({ method: 'POST', path: '/v1/ai/chat' }, body({ temperature: 0 }), {}), expected)
  t.same(cacheability({ method: 'POST', path: '/v1/ai/chat' }, { ...body({ temperature: 0 }), stream: true }, {}), expected)
  t.same(cacheability({ method: 'GET', path: '/v1/ai/generate' }, undefined, {}), expected)
  t.same(cacheability({ method: 'POST', path: '/v1/ai/generate/' }, body(), {}), expected)
  t.same(cacheability({ method: 'POST', path: '/health' }, body(), {}), expected)
})

t.test('a streamed generate is never cached', async (t) => {
  t.same(cacheability(GENERATE, { ...body(), stream: true }, {}), { kind: 'bypass', store: false, reason: 'streaming' })
  t.same(cacheability(GENERATE, body({ stream: true }), {}), { kind: 'bypass', store: false, reason: 'streaming' })
})

t.test('Cache-Control: no-cache bypasses the lookup but the fresh answer is stored', async (t) => {
  const expected = { kind: 'bypass', store: true, reason: 'no-cache' }
  t.same(cacheability(GENERATE, body(), { 'cache-control': 'no-cache' }), expected)
  t.same(cacheability(GENERATE, body(), { 'cache-control': 'max-age=0, No-Cache' }), expected, 'case-insensitive, among other directives')
  t.same(cacheability(GENERATE, body(), { 'cache-control': ['max-age=0', 'no-cache'] }), expected, 'over several header lines')
  t.same(cacheability(GENERATE, body(), { 'cache-control': 'max-age=60' }), { kind: 'cacheable' }, 'other directives are ignored')
})

t.test('Cache-Control: no-store neither reads nor stores', async (t) => {
  t.same(cacheability(GENERATE, body(), { 'cache-control': 'no-store' }), { kind: 'bypass', store: false, reason: 'no-store' })
  t.same(cacheability(GENERATE, body(), { 'cache-control': 'no-cache, no-store' }), { kind: 'bypass', store: false, reason: 'no-store' })
})

t.test('an invalid generate body is left to the upstream to refuse, and never stored', async (t) => {
  const expected = { kind: 'bypass', store: false, reason: 'invalid-body' }
  t.same(cacheability(GENERATE, undefined, {}), expected)
  t.same(cacheability(GENERATE, [], {}), expected)
  t.same(cacheability(GENERATE, { input: 'x' }, {}), expected, 'no use_case')
  t.same(cacheability(GENERATE, { use_case: '' }, {}), expected)
  t.same(cacheability(GENERATE, { use_case: 'summary', options: [] }, {}), expected)
  t.same(cacheability(GENERATE, { use_case: 'summary', options: null }, {}), expected)
  t.same(cacheability(GENERATE, body({ temperature: '0' }), {}), expected, 'a temperature that is not a number')
  t.same(cacheability(GENERATE, body({ temperature: null }), {}), expected)
})
