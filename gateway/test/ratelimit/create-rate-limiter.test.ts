// createRateLimiter picks the implementation from the configuration: disabled, memory only (no REDIS_URL), or Redis with failover.
import t from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { createRateLimiter, rateLimitHeaders } from '../../src/ratelimit/index.js'
import { captureLogs, readyClient } from './fixtures/setup.js'

t.test('disabled: every request allowed, nothing counted, no headers', async (t) => {
  const limiter = createRateLimiter({ enabled: false, limit: 1, logger: captureLogs().logger })
  for (let i = 0; i < 5; i++) t.match(await limiter.check('alice'), { allowed: true, source: 'none' })
  t.same(rateLimitHeaders(await limiter.check('alice'), 60_000), {})
  t.equal(limiter.state(), 'disabled')
  await limiter.close()
})

t.test('no Redis: the memory limiter, defaults of issue 4 (30 per 60 s)', async (t) => {
  const limiter = createRateLimiter({ logger: captureLogs().logger })
  t.teardown(limiter.close)
  t.match(await limiter.check('alice'), { allowed: true, limit: 30, remaining: 29, source: 'memory' })
  t.equal(rateLimitHeaders(await limiter.check('alice'), 60_000)['RateLimit-Policy'], '"default";q=30;w=60')
  t.equal(limiter.state(), 'memory')
})

t.test('with Redis: counted in Redis', async (t) => {
  const server = await startRedis(t)
  const redis = await readyClient(t, server)
  const limiter = createRateLimiter({ redis, limit: 2, windowMs: 10_000, logger: captureLogs().logger })
  t.teardown(limiter.close)
  t.match(await limiter.check('alice'), { allowed: true, remaining: 1, source: 'redis' })
  t.equal(await redis.zcard('ai_ratelimit:{alice}'), 1)
  t.equal(limiter.state(), 'redis')
})

t.test('bad numbers are refused at construction', async (t) => {
  t.throws(() => createRateLimiter({ limit: 0, logger: captureLogs().logger }), RangeError)
  t.throws(() => createRateLimiter({ windowMs: 1.5, logger: captureLogs().logger }), RangeError)
})
