// Rate-limit headers (X-RateLimit-*, draft-ietf-httpapi-ratelimit-headers-09 RateLimit-Policy/RateLimit, Retry-After) and the denial errors.
import t from 'tap'
import { errorEnvelope } from '../../../common/src/errors.js'
import { deniedError, rateLimitHeaders, secondsRoundedUp } from '../../src/ratelimit/headers.js'
import type { RateLimitResult, RateLimitUnavailable } from '../../src/ratelimit/limiter.js'

const allowed: RateLimitResult = { allowed: true, limit: 30, remaining: 29, resetMs: 40_001, retryAfterMs: 0, source: 'redis' }
const denied: RateLimitResult = { allowed: false, limit: 30, remaining: 0, resetMs: 12_300, retryAfterMs: 12_300, source: 'memory' }
const unavailable: RateLimitUnavailable = { allowed: false, unavailable: true, limit: 30, retryAfterMs: 1000, source: 'none' }
const open: RateLimitResult = { allowed: true, limit: 30, remaining: 30, resetMs: 0, retryAfterMs: 0, source: 'none' }

t.test('allowed: limit, remaining, reset in delta-seconds rounded up, both header families', async (t) => {
  t.same(rateLimitHeaders(allowed, 60_000), {
    'X-RateLimit-Limit': '30',
    'X-RateLimit-Remaining': '29',
    'X-RateLimit-Reset': '41',
    'RateLimit-Policy': '"default";q=30;w=60',
    RateLimit: '"default";r=29;t=41'
  })
})

t.test('denied: Retry-After in whole seconds rounded up, and the same moment in t and X-RateLimit-Reset', async (t) => {
  const headers = rateLimitHeaders(denied, 60_000)
  t.equal(headers['Retry-After'], '13')
  t.equal(headers['X-RateLimit-Reset'], '13')
  t.equal(headers.RateLimit, '"default";r=0;t=13')
  t.equal(headers['X-RateLimit-Remaining'], '0')
})

t.test('structured-field syntax (RFC 8941 list of a String item with Integer parameters)', async (t) => {
  const headers = rateLimitHeaders(allowed, 60_000)
  t.match(headers['RateLimit-Policy'], /^"[a-z]+";q=\d+;w=\d+$/)
  t.match(headers.RateLimit, /^"[a-z]+";r=\d+;t=\d+$/)
})

t.test('rounding: never 0 seconds, sub-second windows advertised as 1 s', async (t) => {
  t.equal(secondsRoundedUp(1), 1)
  t.equal(secondsRoundedUp(1000), 1)
  t.equal(secondsRoundedUp(1001), 2)
  t.equal(secondsRoundedUp(0), 1)
  t.equal(rateLimitHeaders({ ...denied, resetMs: 1, retryAfterMs: 1 }, 500)['Retry-After'], '1')
  t.equal(rateLimitHeaders(allowed, 500)['RateLimit-Policy'], '"default";q=30;w=1')
})

t.test('nothing counted (disabled or failure mode open): no headers', async (t) => {
  t.same(rateLimitHeaders(open, 60_000), {})
  t.equal(deniedError(open, 60_000), undefined)
})

t.test('unavailable: only Retry-After', async (t) => {
  t.same(rateLimitHeaders(unavailable, 60_000), { 'Retry-After': '1' })
})

t.test('deniedError: none when allowed', async (t) => {
  t.equal(deniedError(allowed, 60_000), undefined)
})

t.test('deniedError: 429 RATE_LIMIT_EXCEEDED with retry_after_ms and the headers', async (t) => {
  const error = deniedError(denied, 60_000)!
  t.equal(error.status, 429)
  t.equal(error.type, 'RATE_LIMIT_EXCEEDED')
  t.same(error.extra, { retry_after_ms: 12_300 })
  t.equal(error.headers?.['Retry-After'], '13')
  t.equal(error.headers?.RateLimit, '"default";r=0;t=13')
  t.equal(error.message, 'Rate limit exceeded: at most 30 requests per 60 seconds.')
  const envelope = errorEnvelope(error, { request_id: 'r-1' })
  t.match(envelope, { error: { type: 'RATE_LIMIT_EXCEEDED', retry_after_ms: 12_300 }, meta: { request_id: 'r-1' } })
})

t.test('deniedError: retry_after_ms is > 0 and ≤ window whatever the input', async (t) => {
  t.same(deniedError({ ...denied, retryAfterMs: 0, resetMs: 0 }, 60_000)?.extra, { retry_after_ms: 1 })
  t.same(deniedError({ ...denied, retryAfterMs: 90_000, resetMs: 90_000 }, 60_000)?.extra, { retry_after_ms: 60_000 })
  t.same(deniedError({ ...denied, retryAfterMs: 10.2, resetMs: 10.2 }, 60_000)?.extra, { retry_after_ms: 11 })
})

t.test('deniedError: 503 RATE_LIMITER_UNAVAILABLE when the limiter could not decide', async (t) => {
  const error = deniedError(unavailable, 60_000)!
  t.equal(error.status, 503)
  t.equal(error.type, 'RATE_LIMITER_UNAVAILABLE')
  t.same(error.extra, { retry_after_ms: 1000 })
  t.same(error.headers, { 'Retry-After': '1' })
})
