// What counts as usage: admitted requests on the generate and chat routes with a verified user, whatever their answer; not 429s, not an unavailable limiter, not unauthenticated requests, not GET /v1/ai/usage. Tokens null → 0; the use case is kept only once upstream-ai accepted it.
import t from 'tap'
import { NO_USE_CASE, usageOf, utcDay } from '../../src/usage/record.js'
import { completion } from './helpers.js'

const NOON = Date.parse('2026-11-26T12:00:00Z')

t.test('a settled request adds one request and its tokens to its user, day and use case', async (t) => {
  t.same(usageOf(completion(), NOON), { userId: 'alice', day: '2026-11-26', useCase: 'horoscope_daily', requests: 1, tokens: 100, cachedRequests: 0 })
  t.match(usageOf(completion({ route: '/v1/ai/chat', use_case: 'chat', stream: true, tokens_used: 61 }), NOON), { useCase: 'chat', tokens: 61 })
  t.match(usageOf(completion({ cached: true, cache: 'hit', tokens_used: 100 }), NOON), { requests: 1, tokens: 0, cachedRequests: 1 },
    'a cache hit is a request that costs no tokens (its line still shows the answer\'s)')
  t.match(usageOf(completion({ collapsed: true, tokens_used: 100 }), NOON), { requests: 1, tokens: 0, cachedRequests: 0 },
    'an answer shared from another request\'s upstream call costs no tokens either: that request paid')
})

t.test('the day is the UTC day of when the request settled', async (t) => {
  t.equal(utcDay(Date.parse('2026-11-26T23:59:59.999Z')), '2026-11-26')
  t.equal(utcDay(Date.parse('2026-11-27T00:00:00Z')), '2026-11-27')
  t.equal(usageOf(completion(), Date.parse('2026-11-27T00:00:00.001Z'))?.day, '2026-11-27')
})

t.test('refused before admission: not usage', async (t) => {
  t.equal(usageOf(completion({ user_id: null, http_status: 401, status: 'error', error_type: 'UNAUTHORIZED', tokens_used: null }), NOON), undefined, 'no verified user')
  t.equal(usageOf(completion({ http_status: 429, status: 'rate_limited', rate_limited: true, error_type: 'RATE_LIMIT_EXCEEDED', tokens_used: null }), NOON), undefined, 'request limit')
  t.equal(usageOf(completion({ http_status: 429, status: 'error', error_type: 'TOKEN_BUDGET_EXCEEDED', tokens_used: null }), NOON), undefined, 'token budget, even without rate_limited set')
  t.equal(usageOf(completion({ http_status: 503, status: 'error', error_type: 'RATE_LIMITER_UNAVAILABLE', tokens_used: null }), NOON), undefined, 'limiter unavailable (closed)')
  t.equal(usageOf(completion({ route: 'unmatched', http_status: 404, status: 'error', error_type: 'NOT_FOUND' }), NOON), undefined, 'no such route')
  t.equal(usageOf(completion({ route: '/v1/ai/usage', method: 'GET', use_case: null, tokens_used: null }), NOON), undefined, 'reading one\'s usage is not usage')
})

t.test('admitted requests count whatever their answer; tokens are what they settled to', async (t) => {
  t.match(usageOf(completion({ http_status: 502, status: 'error', error_type: 'PROVIDER_ERROR', tokens_used: null }), NOON), { requests: 1, tokens: 0 }, 'an upstream failure: null tokens are 0')
  t.match(usageOf(completion({ route: '/v1/ai/chat', use_case: 'chat', http_status: 499, status: 'error', client_aborted: true, tokens_used: 17 }), NOON),
    { requests: 1, tokens: 17, useCase: 'chat' }, 'a stream cut short: its partial usage, under its use case (tokens were spent on it)')
  t.match(usageOf(completion({ tokens_used: 12.6 }), NOON), { tokens: 13 }, 'whole tokens')
  t.match(usageOf(completion({ tokens_used: -5 }), NOON), { tokens: 0 })
})

t.test('a use case upstream-ai did not accept does not get its own row', async (t) => {
  t.match(usageOf(completion({ use_case: 'made_up_1', http_status: 400, status: 'error', error_type: 'UNKNOWN_USE_CASE', tokens_used: null }), NOON), { useCase: NO_USE_CASE, requests: 1 })
  t.match(usageOf(completion({ use_case: null, http_status: 415, status: 'error', error_type: 'UNSUPPORTED_MEDIA_TYPE', tokens_used: null }), NOON), { useCase: NO_USE_CASE })
  t.match(usageOf(completion({ use_case: 'x'.repeat(65) }), NOON), { useCase: NO_USE_CASE }, 'too long to be a template name')
  t.match(usageOf(completion({ use_case: 'has space' }), NOON), { useCase: NO_USE_CASE })
})
