// Token budgets on a real redis-server (ADMIT_SCRIPT, SETTLE_SCRIPT, TOKEN_STATUS_SCRIPT): exact under concurrency, settle frees budget, daily budget, all-or-nothing, one Cluster slot, NOSCRIPT.
import t from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { sleep } from '../../../common/testkit/ports.js'
import { rateLimitKey, tokenBudgetKeys } from '../../src/ratelimit/keys.js'
import { createRedisTokenLimiter } from '../../src/ratelimit/redis-token-limiter.js'
import { clusterKeySlot } from '../../src/redis.js'
import { readyClient } from './fixtures/setup.js'

const server = await startRedis(t)
const redis = await readyClient(t, server, { commandTimeoutMs: 30_000 })

t.test('20 concurrent reservations against a budget that fits exactly 7: exactly 7 allowed', async (t) => {
  const limiter = createRedisTokenLimiter({ redis, requestLimit: undefined, windowMs: 60_000, tokens: { perMinute: 700, perDay: undefined } })
  const admissions = await Promise.all(Array.from({ length: 20 }, async () => await limiter.admit('concurrent-user', 100)))
  const allowed = admissions.filter((admission) => admission.reservation !== undefined)
  t.equal(allowed.length, 7, 'exactly 7 reservations')
  const refused = admissions.filter((admission) => admission.tokens?.allowed === false)
  t.equal(refused.length, 13)
  for (const admission of refused) {
    t.equal(admission.request, undefined, 'a token refusal reports no request decision')
    t.equal(admission.tokens?.deniedBy?.window, 'minute')
    t.ok(admission.tokens!.retryAfterMs > 0 && admission.tokens!.retryAfterMs <= 60_000, 'retry within the window')
  }
  const keys = tokenBudgetKeys('concurrent-user')
  t.equal(await redis.zcard(keys.minute), 7, 'one member per reservation')
  t.match(await limiter.budgets('concurrent-user'), [{ window: 'minute', limit: 700, used: 700, remaining: 0 }])
  t.equal(new Set(allowed.map((admission) => admission.reservation!.id)).size, 7, 'unique reservation ids')
})

t.test('settling down frees budget at once; settling to 0 removes the reservation', async (t) => {
  const limiter = createRedisTokenLimiter({ redis, requestLimit: undefined, windowMs: 60_000, tokens: { perMinute: 300, perDay: 1000 } })
  const first = await limiter.admit('settle-user', 100)
  const second = await limiter.admit('settle-user', 100)
  await limiter.admit('settle-user', 100)
  t.equal((await limiter.admit('settle-user', 100)).tokens?.allowed, false, 'the budget is full')
  await limiter.settle(first.reservation!, 10)
  await limiter.settle(second.reservation!, 0)
  const budgets = await limiter.budgets('settle-user')
  t.match(budgets, [{ window: 'minute', used: 110, remaining: 190 }, { window: 'day', used: 110, remaining: 890 }])
  t.equal(await redis.zcard(tokenBudgetKeys('settle-user').minute), 2, 'the 0-token reservation is gone')
  const fourth = await limiter.admit('settle-user', 100)
  t.ok(fourth.reservation !== undefined, 'room again')
  // Settling to more than reserved (upstream's prompt template adds tokens) counts what was really used.
  await limiter.settle(fourth.reservation!, 250)
  t.match(await limiter.budgets('settle-user'), [{ window: 'minute', used: 360, remaining: 0 }, { window: 'day', used: 360 }])
  t.equal((await limiter.admit('settle-user', 1)).tokens?.allowed, false, 'over the budget after the settle')
})

t.test('a settle after the reservation left the minute window changes nothing there', async (t) => {
  const limiter = createRedisTokenLimiter({ redis, requestLimit: undefined, windowMs: 60_000, tokens: { perMinute: 100, perDay: undefined, minuteMs: 300 } })
  const { reservation } = await limiter.admit('late-user', 100)
  t.equal((await limiter.admit('late-user', 1)).tokens?.allowed, false)
  await sleep(400)
  t.ok((await limiter.admit('late-user', 50)).reservation !== undefined, 'the window moved on')
  await limiter.settle(reservation!, 90)
  t.match(await limiter.budgets('late-user'), [{ used: 50 }], 'the late settle did not resurrect the old reservation')
})

t.test('minute retry-after names when enough reservations leave the window', async (t) => {
  const limiter = createRedisTokenLimiter({ redis, requestLimit: undefined, windowMs: 60_000, tokens: { perMinute: 300, perDay: undefined, minuteMs: 2000 } })
  await limiter.admit('retry-user', 100)
  await sleep(300)
  await limiter.admit('retry-user', 200)
  const refused = await limiter.admit('retry-user', 150)
  t.equal(refused.tokens?.allowed, false)
  // The first (100) must leave to fit 150? 300 - 100 + 150 = 350 > 300: both must leave, so about 2000 ms from the second.
  t.ok(refused.tokens!.retryAfterMs > 1500 && refused.tokens!.retryAfterMs <= 2000, `retry ${refused.tokens!.retryAfterMs} ms: the second reservation's exit`)
  const smaller = await limiter.admit('retry-user', 100)
  t.ok(smaller.tokens!.retryAfterMs > 0 && smaller.tokens!.retryAfterMs < refused.tokens!.retryAfterMs, '100 fits once the first reservation leaves: sooner')
  const never = await limiter.admit('retry-user', 301)
  t.equal(never.tokens?.allowed, false, 'a reservation above the limit never fits')
  t.equal(never.tokens?.retryAfterMs, 2000, 'a whole window')
})

t.test('daily budget: refused past the day limit until the day ends; the key expires with its day', async (t) => {
  const dayMs = 1500
  const limiter = createRedisTokenLimiter({ redis, requestLimit: undefined, windowMs: 60_000, tokens: { perMinute: undefined, perDay: 250, dayMs } })
  // Start just after a day boundary so the test does not straddle one.
  const [seconds, micros] = await redis.time()
  const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  await sleep(dayMs - (nowMs % dayMs) + 20)
  t.ok((await limiter.admit('day-user', 100)).reservation !== undefined)
  t.ok((await limiter.admit('day-user', 100)).reservation !== undefined)
  const refused = await limiter.admit('day-user', 100)
  t.equal(refused.tokens?.deniedBy?.window, 'day')
  t.ok(refused.tokens!.retryAfterMs > 0 && refused.tokens!.retryAfterMs <= dayMs, `retry ${refused.tokens!.retryAfterMs} ms: the end of the day`)
  const ttl = await redis.pttl(tokenBudgetKeys('day-user').day)
  t.ok(ttl > 0 && ttl <= dayMs, `PTTL ${ttl} ≤ the day`)
  t.equal(await redis.exists(tokenBudgetKeys('day-user').minute), 0, 'no minute keys without a minute budget')
  await sleep(refused.tokens!.retryAfterMs + 50)
  t.ok((await limiter.admit('day-user', 100)).reservation !== undefined, 'a new day')
})

t.test('all or nothing: a token refusal is not counted as a request, a request refusal reserves nothing', async (t) => {
  const limiter = createRedisTokenLimiter({ redis, requestLimit: 2, windowMs: 60_000, tokens: { perMinute: 150, perDay: 1000 } })
  const keys = tokenBudgetKeys('atomic-user')
  const first = await limiter.admit('atomic-user', 100)
  t.match(first.request, { allowed: true, limit: 2, remaining: 1, source: 'redis' })
  const tokenRefused = await limiter.admit('atomic-user', 100)
  t.equal(tokenRefused.tokens?.allowed, false)
  t.equal(await redis.zcard(rateLimitKey('atomic-user')), 1, 'the request limit did not count the token refusal')
  t.ok((await limiter.admit('atomic-user', 10)).reservation !== undefined, 'second request fits both')
  const requestRefused = await limiter.admit('atomic-user', 10)
  t.match(requestRefused, { request: { allowed: false, remaining: 0 }, reservation: undefined })
  t.ok(requestRefused.request!.retryAfterMs > 0)
  t.equal(await redis.zcard(keys.minute), 2, 'nothing reserved for the refused request')
  t.equal(await redis.hget(keys.day, 'used'), '110', 'the day counts only the admitted')
})

t.test('every key of a user is in the request key\'s Cluster slot', async (t) => {
  for (const userId of ['alice', 'bob@example.com', 'with space', '{braces}', 'x'.repeat(500)]) {
    const slot = clusterKeySlot(rateLimitKey(userId))
    const keys = tokenBudgetKeys(userId)
    t.same([clusterKeySlot(keys.minute), clusterKeySlot(keys.minuteTokens), clusterKeySlot(keys.day)], [slot, slot, slot], userId.slice(0, 20))
  }
  t.equal(tokenBudgetKeys('alice').minute, 'ai_tokens:{alice}:minute', 'the documented key')
})

t.test('the scripts are reloaded after SCRIPT FLUSH (NOSCRIPT)', async (t) => {
  const limiter = createRedisTokenLimiter({ redis, requestLimit: 5, windowMs: 60_000, tokens: { perMinute: 1000, perDay: undefined } })
  const { reservation } = await limiter.admit('flush-user', 10)
  await redis.script('FLUSH')
  await limiter.settle(reservation!, 5)
  t.match(await limiter.budgets('flush-user'), [{ used: 5 }])
  await redis.script('FLUSH')
  t.ok((await limiter.admit('flush-user', 10)).reservation !== undefined)
})
