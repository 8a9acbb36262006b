// Scenario 9, Redis down and 100 000 distinct users (a tenth of them with 4 KB ids) through the gateway's failover limiter with its defaults: the memory fallback tracks at most 10 000 users and the heap after GC stays within a few MB.
import t from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { createFailoverLimiter } from '../../src/ratelimit/failover-limiter.js'
import { RATE_LIMIT_DEFAULTS } from '../../src/ratelimit/limiter.js'
import { createMemoryLimiter } from '../../src/ratelimit/memory-limiter.js'
import { heapAfterGc } from '../helpers/reliability.js'
import { captureLogs, readyClient } from '../ratelimit/fixtures/setup.js'

t.test('100 000 users while Redis is down: bounded by the memory fallback\'s cap', async (t) => {
  const server = await startRedis(t)
  const logs = captureLogs('warn')
  const redis = await readyClient(t, server, { commandTimeoutMs: 100, logger: logs.logger })
  // The gateway's defaults: 30 per 60 s, at most 10 000 users in memory; the fallback is passed in only to read its counters.
  const fallback = createMemoryLimiter({ limit: RATE_LIMIT_DEFAULTS.limit, windowMs: RATE_LIMIT_DEFAULTS.windowMs, maxUsers: RATE_LIMIT_DEFAULTS.maxUsers })
  const limiter = createFailoverLimiter({ redis, limit: RATE_LIMIT_DEFAULTS.limit, windowMs: RATE_LIMIT_DEFAULTS.windowMs, fallback, logger: logs.logger })
  t.teardown(async () => { await limiter.close() })
  await server.stop()

  const heapBefore = heapAfterGc()
  let peakUsers = 0
  const started = performance.now()
  for (let i = 0; i < 100_000; i++) {
    const outcome = await limiter.check(i % 10 === 0 ? `user-${i}-${'x'.repeat(4096)}` : `user-${i}`)
    if (outcome.source !== 'memory' || !outcome.allowed) throw new Error(`user ${i}: ${JSON.stringify(outcome)}`)
    if (i % 1000 === 0) peakUsers = Math.max(peakUsers, fallback.trackedUsers())
  }
  const seconds = (performance.now() - started) / 1000
  const heapGrowth = heapAfterGc() - heapBefore
  t.comment(`100 000 checks in ${seconds.toFixed(1)} s; heap after GC +${(heapGrowth / 2 ** 20).toFixed(2)} MB; ${fallback.trackedUsers()} users, ${fallback.storedRequests()} timestamps kept`)
  t.equal(Math.max(peakUsers, fallback.trackedUsers()), RATE_LIMIT_DEFAULTS.maxUsers, 'tracked users peak at the cap (10 000)')
  t.equal(fallback.storedRequests(), RATE_LIMIT_DEFAULTS.maxUsers, 'one timestamp per tracked user')
  t.ok(heapGrowth < 8 * 2 ** 20, `heap after GC grew ${(heapGrowth / 2 ** 20).toFixed(2)} MB (${(heapGrowth / RATE_LIMIT_DEFAULTS.maxUsers).toFixed(0)} bytes per tracked user)`)
  t.equal(logs.lines.filter((line) => line.level === 'warn' && String(line.msg).startsWith('rate limiter')).length, 1, 'one warning for the whole flood')
})
