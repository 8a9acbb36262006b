// Redis killed, frozen, refusing writes, or never there: checks answer at once per failure mode (memory, open, closed) and Redis is taken back by itself.
import t, { type Test } from 'tap'
import { freePort, waitFor } from '../../../common/testkit/ports.js'
import { startRedis } from '../../../common/testkit/redis.js'
import { createFailoverLimiter, FAILOVER_LOG_MESSAGES, type FailoverLimiterOptions } from '../../src/ratelimit/failover-limiter.js'
import { deniedError } from '../../src/ratelimit/headers.js'
import type { FailureMode, RateLimitOutcome } from '../../src/ratelimit/limiter.js'
import { createRedisClient } from '../../src/redis.js'
import { captureLogs, readyClient, timed } from './fixtures/setup.js'

/** AI_ENGINE_REDIS_TIMEOUT_MS's default. */
const TIMEOUT_MS = 100
/** Generous: other test suites share this 2-core machine. */
const MARGIN_MS = 500
const PROBE_INTERVAL_MS = 100

async function setup (t: Test, failureMode: FailureMode, extra: Partial<FailoverLimiterOptions> = {}) {
  const server = await startRedis(t)
  const logs = captureLogs()
  const redis = await readyClient(t, server, { commandTimeoutMs: TIMEOUT_MS, logger: logs.logger })
  const limiter = createFailoverLimiter({
    redis, limit: 3, windowMs: 60_000, failureMode, timeoutMs: TIMEOUT_MS, probeIntervalMs: PROBE_INTERVAL_MS, logger: logs.logger, ...extra
  })
  t.teardown(async () => { await limiter.close() })
  const fallbackLines = (): number => logs.withMsg(FAILOVER_LOG_MESSAGES.fallback, 'warn').length
  const recoveredLines = (): number => logs.withMsg(FAILOVER_LOG_MESSAGES.recovered, 'info').length
  return { server, logs, redis, limiter, fallbackLines, recoveredLines }
}

/** Runs `count` checks for `userId`, each timed; none may throw. */
async function checks (t: Test, limiter: { check: (id: string) => Promise<RateLimitOutcome> }, userId: string, count: number): Promise<RateLimitOutcome[]> {
  const outcomes: RateLimitOutcome[] = []
  for (let i = 0; i < count; i++) {
    const { value, ms } = await timed(async () => await limiter.check(userId))
    t.ok(ms < TIMEOUT_MS + MARGIN_MS, `check ${i + 1} answered in ${ms.toFixed(1)} ms`)
    outcomes.push(value)
  }
  return outcomes
}

async function backOnRedis (limiter: { check: (id: string) => Promise<RateLimitOutcome> }): Promise<void> {
  await waitFor(async () => (await limiter.check('probe-user')).source === 'redis' ? true : undefined, {
    timeoutMs: 20_000, intervalMs: 50, what: 'the limiter back on redis'
  })
}

t.test('memory: Redis killed → memory answers at once, one warning; restarted → back on Redis, one info line', async (t) => {
  const { server, limiter, fallbackLines, recoveredLines } = await setup(t, 'memory')
  t.match(await limiter.check('alice'), { allowed: true, remaining: 2, source: 'redis' })
  t.equal(limiter.state(), 'redis')

  await server.stop()
  const outcomes = await checks(t, limiter, 'bob', 6)
  t.same(outcomes.map((outcome) => [outcome.source, outcome.allowed]), [
    ['memory', true], ['memory', true], ['memory', true], ['memory', false], ['memory', false], ['memory', false]
  ], 'the memory limiter enforces the same limit')
  t.equal(limiter.state(), 'fallback')
  t.equal(fallbackLines(), 1, 'one warning for the switch')

  await server.restart()
  await backOnRedis(limiter)
  t.equal(limiter.state(), 'redis')
  t.match(await limiter.check('bob'), { allowed: true, remaining: 2, source: 'redis' }, 'Redis counts again (it restarted empty)')
  t.equal(recoveredLines(), 1, 'one info line when back')
  t.equal(fallbackLines(), 1, 'still one warning')
})

t.test('open: Redis down → everything allowed, nothing counted, no rate-limit headers', async (t) => {
  const { server, limiter, fallbackLines, recoveredLines } = await setup(t, 'open')
  await server.stop()
  const outcomes = await checks(t, limiter, 'alice', 8)
  t.ok(outcomes.every((outcome) => outcome.allowed && outcome.source === 'none'), 'all 8 allowed (limit 3), source none')
  t.equal(deniedError(outcomes[7]!, 60_000), undefined)
  t.equal(fallbackLines(), 1)
  await server.restart()
  await backOnRedis(limiter)
  t.equal(recoveredLines(), 1)
})

t.test('closed: Redis down → unavailable, which the pipeline maps to 503 RATE_LIMITER_UNAVAILABLE', async (t) => {
  const { server, limiter, fallbackLines, recoveredLines } = await setup(t, 'closed')
  await server.stop()
  const outcomes = await checks(t, limiter, 'alice', 3)
  for (const outcome of outcomes) {
    t.match(outcome, { allowed: false, unavailable: true, source: 'none' })
    t.match(deniedError(outcome, 60_000), { status: 503, type: 'RATE_LIMITER_UNAVAILABLE' })
  }
  t.equal(fallbackLines(), 1)
  await server.restart()
  await backOnRedis(limiter)
  t.equal(recoveredLines(), 1)
})

t.test('frozen Redis (SIGSTOP): checks return within the Redis timeout, later ones at once; thawed → back', async (t) => {
  const { server, limiter, fallbackLines, recoveredLines } = await setup(t, 'memory')
  t.match(await limiter.check('alice'), { source: 'redis' })
  server.freeze()
  t.teardown(() => { server.thaw() })
  const outcomes = await checks(t, limiter, 'alice', 5)
  t.ok(outcomes.every((outcome) => outcome.source === 'memory'), 'answered from memory')
  t.equal(fallbackLines(), 1, 'one warning (the first check timed out)')
  t.equal(limiter.state(), 'fallback')
  server.thaw()
  await backOnRedis(limiter)
  t.equal(recoveredLines(), 1)
  t.equal(fallbackLines(), 1)
})

t.test('Redis answering PING but refusing writes (over maxmemory) counts as unavailable, without flapping', async (t) => {
  const { server, limiter, fallbackLines, recoveredLines } = await setup(t, 'memory')
  t.match(await limiter.check('alice'), { source: 'redis' })
  t.match(await server.command('CONFIG', 'SET', 'maxmemory', '1'), /^\+OK/)
  t.match(await limiter.check('bob'), { allowed: true, source: 'memory' }, 'the OOM error reply switched to memory')
  await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS * 8))
  t.equal(limiter.state(), 'fallback', 'probes keep failing: still on the fallback')
  t.equal(recoveredLines(), 0, 'no flapping')
  t.equal(fallbackLines(), 1)
  t.match(await server.command('CONFIG', 'SET', 'maxmemory', '0'), /^\+OK/)
  await backOnRedis(limiter)
  t.equal(recoveredLines(), 1)
})

t.test('Redis never reachable: the first check does not wait for a connection', async (t) => {
  const logs = captureLogs()
  const port = await freePort()
  const redis = createRedisClient({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: TIMEOUT_MS, logger: logs.logger })
  t.teardown(() => { redis.disconnect(false) })
  const limiter = createFailoverLimiter({ redis, limit: 2, windowMs: 60_000, timeoutMs: TIMEOUT_MS, probeIntervalMs: PROBE_INTERVAL_MS, logger: logs.logger })
  t.teardown(async () => { await limiter.close() })
  const outcomes = await checks(t, limiter, 'alice', 3)
  t.same(outcomes.map((outcome) => outcome.allowed), [true, true, false])
  t.ok(outcomes.every((outcome) => outcome.source === 'memory'))
  t.equal(logs.withMsg(FAILOVER_LOG_MESSAGES.fallback, 'warn').length, 1)
})

t.test('close() stops probing; the shared client is left open', async (t) => {
  const { server, redis, limiter } = await setup(t, 'memory')
  await server.stop()
  await limiter.check('alice')
  t.equal(limiter.state(), 'fallback')
  await limiter.close()
  await server.restart()
  await waitFor(() => redis.status === 'ready' ? true : undefined, { timeoutMs: 20_000, what: 'client reconnected' })
  await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS * 5))
  t.equal(limiter.state(), 'fallback', 'no probe ran after close')
})
