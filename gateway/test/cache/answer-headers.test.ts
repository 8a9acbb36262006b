// Stored answers and cache headers: only a complete 200 {text, usage, meta} within the size limit is storable; hits carry meta.cached and this request's ids; X-Cache, RFC 9211 Cache-Status and Age.
import t from 'tap'
import { ageSeconds, checkStorableAnswer, createEntry, hitAnswer, isStorableAnswer, withRequestIds } from '../../src/cache/answer.js'
import { cacheHeaders } from '../../src/cache/headers.js'
import { sampleEntry } from './fixtures/helpers.js'

const answer = { text: 'Paris.', usage: { total_tokens: 5 }, meta: { model: 'm', request_id: 'req-first', trace_id: 'a'.repeat(32), cached: false } }
const body = Buffer.from(JSON.stringify(answer))

t.test('only a complete 200 generate answer within the size limit is storable', async (t) => {
  t.same(checkStorableAnswer(200, body), { storable: true, answer })
  t.equal(isStorableAnswer(200, body), true)
  t.equal(isStorableAnswer(200, body.toString()), true, 'a string body too')
  t.same(checkStorableAnswer(502, body), { storable: false, reason: 'status' })
  t.same(checkStorableAnswer(201, body), { storable: false, reason: 'status' })
  t.same(checkStorableAnswer(200, body.subarray(0, body.length - 3)), { storable: false, reason: 'invalid-body' }, 'a cut-off body')
  t.same(checkStorableAnswer(200, Buffer.from('')), { storable: false, reason: 'invalid-body' })
  t.same(checkStorableAnswer(200, Buffer.from('{"error":{"type":"PROVIDER_ERROR"}}')), { storable: false, reason: 'invalid-body' })
  for (const broken of [
    { usage: {}, meta: {} },
    { text: 1, usage: {}, meta: {} },
    { text: 'x', usage: [], meta: {} },
    { text: 'x', usage: {}, meta: null },
    { text: 'x', usage: {} }
  ]) {
    t.equal(isStorableAnswer(200, JSON.stringify(broken)), false, JSON.stringify(broken))
  }
})

t.test('an answer larger than the max entry size is not storable', async (t) => {
  t.same(checkStorableAnswer(200, body, body.length - 1), { storable: false, reason: 'too-large' })
  t.equal(isStorableAnswer(200, body, body.length), true, 'exactly at the limit is fine')
  const big = Buffer.from(JSON.stringify({ ...answer, text: 'x'.repeat(256 * 1024) }))
  t.same(checkStorableAnswer(200, big), { storable: false, reason: 'too-large' }, 'the default limit is 256 KiB')
})

t.test('a stored entry keeps no request-specific meta', async (t) => {
  const entry = createEntry(answer, 1_700_000_000_000)
  t.same(entry, { answer: { text: 'Paris.', usage: { total_tokens: 5 }, meta: { model: 'm' } }, storedAtMs: 1_700_000_000_000 })
  t.equal(answer.meta.request_id, 'req-first', 'the upstream answer itself is untouched')
})

t.test('a hit answers with meta.cached: true and this request\'s ids', async (t) => {
  const entry = createEntry(answer, 1_700_000_000_000)
  t.same(hitAnswer(entry, { request_id: 'req-2', trace_id: 'b'.repeat(32) }), {
    text: 'Paris.', usage: { total_tokens: 5 }, meta: { model: 'm', cached: true, request_id: 'req-2', trace_id: 'b'.repeat(32) }
  })
  t.same(hitAnswer(entry, { request_id: 'req-3' }).meta, { model: 'm', cached: true, request_id: 'req-3' })
  t.same(entry.answer.meta, { model: 'm' }, 'the entry is untouched')
})

t.test('a collapsed request gets the shared answer with its own ids, never the caller\'s', async (t) => {
  const shared = checkStorableAnswer(200, body)
  if (!shared.storable) throw new Error('expected a storable answer')
  t.same(withRequestIds(shared.answer, { request_id: 'req-2' }, false).meta, { model: 'm', cached: false, request_id: 'req-2' })
  t.equal(shared.answer.meta.request_id, 'req-first', 'the shared answer is untouched')
})

const CACHE_STATUS_MEMBER = /^ai-gateway(?:; (?:hit|fwd=(?:miss|bypass)|fwd-status=\d{3}|ttl=\d+|collapsed|stored|detail=[a-z][a-z-]*))+$/

t.test('hit: X-Cache HIT, Cache-Status hit with the remaining ttl, Age', async (t) => {
  const entry = sampleEntry('x', 1_700_000_000_000)
  const headers = cacheHeaders({ kind: 'hit', entry, ttlSeconds: 3600, nowMs: 1_700_000_125_900 })
  t.same(headers, { 'x-cache': 'HIT', 'cache-status': 'ai-gateway; hit; ttl=3475', age: '125' })
  t.match(headers['cache-status'], CACHE_STATUS_MEMBER)
  t.equal(ageSeconds(entry, 1_699_999_999_000), 0, 'a replica with a clock behind never says a negative age')
  t.same(cacheHeaders({ kind: 'hit', entry, ttlSeconds: 60, nowMs: 1_700_000_061_000 })['cache-status'], 'ai-gateway; hit; ttl=0', 'nor a negative ttl')
})

t.test('miss: X-Cache MISS, Cache-Status fwd=miss with stored / collapsed, no Age', async (t) => {
  t.same(cacheHeaders({ kind: 'miss', stored: true, collapsed: false }), { 'x-cache': 'MISS', 'cache-status': 'ai-gateway; fwd=miss; stored' })
  t.same(cacheHeaders({ kind: 'miss', stored: false, collapsed: false, fwdStatus: 502 }), { 'x-cache': 'MISS', 'cache-status': 'ai-gateway; fwd=miss; fwd-status=502' })
  const collapsed = cacheHeaders({ kind: 'miss', stored: true, collapsed: true, fwdStatus: 200 })
  t.same(collapsed, { 'x-cache': 'MISS', 'cache-status': 'ai-gateway; fwd=miss; fwd-status=200; collapsed; stored' })
  t.match(collapsed['cache-status'], CACHE_STATUS_MEMBER)
})

t.test('bypass: X-Cache BYPASS, Cache-Status fwd=bypass with the reason as detail', async (t) => {
  const noCache = cacheHeaders({ kind: 'bypass', reason: 'no-cache', stored: true })
  t.same(noCache, { 'x-cache': 'BYPASS', 'cache-status': 'ai-gateway; fwd=bypass; stored; detail=no-cache' })
  t.match(noCache['cache-status'], CACHE_STATUS_MEMBER)
  t.same(cacheHeaders({ kind: 'bypass', reason: 'temperature', stored: false }), { 'x-cache': 'BYPASS', 'cache-status': 'ai-gateway; fwd=bypass; detail=temperature' })
})
