// The sliding-window Lua script on a real redis-server, with Redis's own TIME: counts, members, TTL, uniqueness, NOSCRIPT.
import t from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { sleep } from '../../../common/testkit/ports.js'
import { rateLimitKey } from '../../src/ratelimit/keys.js'
import { createRedisLimiter } from '../../src/ratelimit/redis-limiter.js'
import { SLIDING_WINDOW_SCRIPT } from '../../src/ratelimit/scripts.js'
import { readyClient } from './fixtures/setup.js'

const server = await startRedis(t)
// These tests are about the script's answers, not timeouts: a loaded machine must not fail the 100 000-member pre-fill.
const redis = await readyClient(t, server, { commandTimeoutMs: 30_000 })

async function redisTimeUs (): Promise<number> {
  const [seconds, micros] = await redis.time()
  return Number(seconds) * 1_000_000 + Number(micros)
}

t.test('N allowed, then denied; denied requests add no member', async (t) => {
  const limiter = createRedisLimiter({ redis, limit: 4, windowMs: 30_000 })
  const key = rateLimitKey('count-user')
  for (let i = 0; i < 4; i++) {
    t.match(await limiter.check('count-user'), { allowed: true, remaining: 3 - i, retryAfterMs: 0, source: 'redis' })
  }
  for (let i = 0; i < 10; i++) {
    const denied = await limiter.check('count-user')
    t.equal(denied.allowed, false)
    t.ok(denied.retryAfterMs > 0 && denied.retryAfterMs <= 30_000, `retryAfterMs ${denied.retryAfterMs} within (0, window]`)
  }
  t.equal(await redis.zcard(key), 4, 'ZCARD == N after the denials')
  t.equal(key, 'ai_ratelimit:{count-user}', 'the documented key')
})

t.test('members are "<Redis TIME in µs>-<n>" and scores are Redis time', async (t) => {
  const limiter = createRedisLimiter({ redis, limit: 3, windowMs: 30_000 })
  const before = await redisTimeUs()
  await limiter.check('clock-user')
  const after = await redisTimeUs()
  const [member, score] = await redis.zrange(rateLimitKey('clock-user'), 0, 0, 'WITHSCORES')
  t.match(member, /^\d{16}-0$/, 'member format')
  t.equal(member, `${score!}-0`, 'member carries its score')
  t.ok(Number(score) >= before && Number(score) <= after, 'score taken from Redis TIME during the call')
})

t.test('the key expires one window after the newest counted request; denials do not extend it', async (t) => {
  const windowMs = 5000
  const limiter = createRedisLimiter({ redis, limit: 2, windowMs })
  const key = rateLimitKey('ttl-user')
  await limiter.check('ttl-user')
  const first = await redis.pttl(key)
  t.ok(first > 0 && first <= windowMs, `PTTL ${first} within (0, window]`)
  await limiter.check('ttl-user')
  await sleep(50)
  const beforeDenials = await redis.pttl(key)
  await limiter.check('ttl-user')
  await limiter.check('ttl-user')
  const afterDenials = await redis.pttl(key)
  t.ok(afterDenials <= beforeDenials, `a denial does not refresh the TTL (${beforeDenials} → ${afterDenials})`)
})

t.test('after a short window the user is allowed again and the key is gone', async (t) => {
  const windowMs = 400
  const limiter = createRedisLimiter({ redis, limit: 2, windowMs })
  const key = rateLimitKey('short-user')
  await limiter.check('short-user')
  await limiter.check('short-user')
  const denied = await limiter.check('short-user')
  t.equal(denied.allowed, false)
  t.ok(denied.retryAfterMs > 0 && denied.retryAfterMs <= windowMs)
  await sleep(windowMs + 100)
  t.equal(await redis.exists(key), 0, 'the key expired with the window')
  t.match(await limiter.check('short-user'), { allowed: true, remaining: 1 }, 'a fresh window')
})

t.test('another user is unaffected and has a key of its own', async (t) => {
  const limiter = createRedisLimiter({ redis, limit: 1, windowMs: 30_000 })
  await limiter.check('full-user')
  t.equal((await limiter.check('full-user')).allowed, false)
  t.match(await limiter.check('other-user'), { allowed: true, remaining: 0 })
  t.equal(await redis.zcard(rateLimitKey('full-user')), 1)
  t.equal(await redis.zcard(rateLimitKey('other-user')), 1)
})

t.test('200 concurrent checks in the same milliseconds: exactly N allowed, ZCARD == N, members unique', async (t) => {
  const limiter = createRedisLimiter({ redis, limit: 150, windowMs: 30_000 })
  const results = await Promise.all(Array.from({ length: 200 }, async () => await limiter.check('burst-user')))
  t.equal(results.filter((result) => result.allowed).length, 150, '150 allowed')
  t.equal(await redis.zcard(rateLimitKey('burst-user')), 150, 'ZCARD == 150')
})

t.test('two requests in the same microsecond get distinct members', async (t) => {
  // TIME cannot be stopped, so another request "in the same microsecond" is
  // simulated: every microsecond of a stretch ahead is pre-filled with the
  // member a first request would have written there ("<µs>-0"). Checks landing
  // in that stretch must add "<µs>-1", never overwrite "<µs>-0".
  const key = rateLimitKey('same-micro-user')
  const stretchUs = 100_000
  const start = Number(await redis.eval(`
    local t = redis.call('TIME')
    local start = (tonumber(t[1]) + 2) * 1000000
    for us = start, start + tonumber(ARGV[1]) - 1 do
      redis.call('ZADD', KEYS[1], string.format('%d', us), string.format('%d-0', us))
    end
    return string.format('%d', start)`, 1, key, stretchUs))
  t.equal(await redis.zcard(key), stretchUs, 'stretch pre-filled')
  while ((await redisTimeUs()) < start + 1000) await sleep(2)

  // One MULTI: the checks run back to back, inside the stretch.
  const transaction = redis.multi().time()
  for (let i = 0; i < 20; i++) transaction.eval(SLIDING_WINDOW_SCRIPT, 1, key, 1_000_000, 30_000)
  const replies = (await transaction.exec())!
  const [seconds, micros] = replies[0]![1] as [string, string]
  const ranAt = Number(seconds) * 1_000_000 + Number(micros)
  t.same(replies.slice(1).map(([error, reply]) => [error, (reply as number[])[0]]), Array.from({ length: 20 }, () => [null, 1]), '20 allowed')
  t.equal(await redis.zcard(key), stretchUs + 20, 'every check added a member, none overwrote one')
  const inStretch = await redis.zrangebyscore(key, start, start + stretchUs - 1)
  const collided = inStretch.filter((member) => member.endsWith('-1')).length
  if (ranAt < start + stretchUs - 10_000) {
    t.ok(collided >= 1, `${collided} checks shared their microsecond with a stored request and took the next name`)
  } else {
    t.comment('the transaction ran after the stretch (a stalled machine): the collision case was not exercised this time')
  }
  await redis.del(key)
})

t.test('NOSCRIPT: after SCRIPT FLUSH the next check reloads the script and still counts', async (t) => {
  const limiter = createRedisLimiter({ redis, limit: 5, windowMs: 30_000 })
  t.match(await limiter.check('flush-user'), { allowed: true, remaining: 4 })
  t.match(await limiter.check('flush-user'), { allowed: true, remaining: 3 }, 'second call over EVALSHA')
  t.match(await server.command('SCRIPT', 'FLUSH'), /^\+OK/)
  t.match(await limiter.check('flush-user'), { allowed: true, remaining: 2 }, 'works after the flush')
  t.match(await limiter.check('flush-user'), { allowed: true, remaining: 1 })
  t.equal(await redis.zcard(rateLimitKey('flush-user')), 4, 'the NOSCRIPT round counted once')
  t.match(await redis.info('errorstats'), /errorstat_NOSCRIPT:count=1/, 'one EVALSHA was refused with NOSCRIPT')
})
