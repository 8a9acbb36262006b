// Redis Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_MASTER): config rules that never quote a password; then a real group on loopback (master, replica, one sentinel): the gateway finds the master through the sentinel and counts there, the master is killed under traffic — no 5xx, the memory fallback answers while the sentinel elects the replica — and the gateway moves to the new master by itself, where the counts made before (replicated) still hold.
import t from 'tap'
import { ConfigError } from '../../../common/src/config.js'
import { waitFor } from '../../../common/testkit/ports.js'
import { startRedisSentinelGroup } from '../../../common/testkit/redis-sentinel.js'
import { loadConfig } from '../../src/config.js'
import { FAILOVER_LOG_MESSAGES } from '../../src/ratelimit/failover-limiter.js'
import { rateLimitKey } from '../../src/ratelimit/keys.js'
import { sentinelNodes } from '../../src/redis.js'
import { bearer, call, startGateway, TEST_SECRET } from '../helpers/gateway.js'
import { answerGenerate, generateBody } from '../helpers/generate.js'
import { health, logLines } from '../helpers/reliability.js'
import { startUpstream } from '../helpers/upstream.js'

const respInteger = (reply: string): number => Number(/^:(\d+)/.exec(reply)?.[1] ?? Number.NaN)

t.test('REDIS_SENTINELS and REDIS_SENTINEL_MASTER: parsed, together or not at all, alone among the Redis targets', async (t) => {
  t.match(sentinelNodes('127.0.0.1:26379, sentinel-2,[::1]:26380'), { nodes: [{ host: '127.0.0.1', port: 26379 }, { host: 'sentinel-2', port: 26379 }, { host: '::1', port: 26380 }] })
  t.match(sentinelNodes('redis://:s%40cret@s1:26379,s2'), { password: 's@cret', nodes: [{ host: 's1' }, { host: 's2', port: 26379 }] })
  const base = { ENVIRONMENT: 'test', JWT_SECRET_KEY: TEST_SECRET }
  t.match(loadConfig({ ...base, REDIS_SENTINELS: 's1:26379,s2:26379', REDIS_SENTINEL_MASTER: 'mymaster' }), { redisSentinelMaster: 'mymaster', redisSentinels: { nodes: [{ host: 's1' }, { host: 's2' }] } })
  const problems = (env: Record<string, string>): string => {
    try {
      loadConfig({ ...base, ...env })
    } catch (error) {
      if (error instanceof ConfigError) return error.message
      throw error
    }
    return ''
  }
  t.match(problems({ REDIS_SENTINELS: 's1' }), /REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together/)
  t.match(problems({ REDIS_SENTINEL_MASTER: 'mymaster' }), /REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together/)
  const both = problems({ REDIS_URL: 'redis://:hunter2@redis:6379', REDIS_SENTINELS: 'redis://:hunter2@s1', REDIS_SENTINEL_MASTER: 'mymaster', REDIS_SENTINEL_PASSWORD: 'hunter3' })
  t.match(both, /REDIS_URL and REDIS_SENTINELS are both set/)
  t.notMatch(both, /hunter/, 'no password in the message')
  t.match(problems({ REDIS_SENTINELS: 's1', REDIS_SENTINEL_MASTER: 'my master' }), /REDIS_SENTINEL_MASTER/)
})

t.test('the gateway on a Sentinel group, and its master killed', async (t) => {
  const N = 5
  const group = await startRedisSentinelGroup(t, { downAfterMs: 1000 })
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_SENTINELS: group.sentinels,
    REDIS_SENTINEL_MASTER: group.masterName,
    AI_ENGINE_RATE_LIMIT_PER_MIN: String(N),
    AI_ENGINE_REDIS_TIMEOUT_MS: '500',
    AI_GATEWAY_HEALTH_CACHE_MS: '0'
  })
  await waitFor(() => logLines(gateway, 'redis connected').length > 0 ? true : undefined, { timeoutMs: 10_000, what: 'redis connected' })
  t.match(logLines(gateway, 'using Redis')[0], { redis: `sentinel master ${group.masterName} via ${group.sentinels}` }, 'start-up names the sentinels and the master group')
  t.match(await health(gateway), { status: 200, body: { status: 'healthy', services: { redis: 'ok' } } })

  const generate = async (user: string): Promise<number> =>
    (await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: user }), body: generateBody(user) })).status
  const before: number[] = []
  for (let i = 0; i < 3; i++) before.push(await generate('steady'))
  t.same(before, [200, 200, 200])
  t.equal(respInteger(await group.master.command('ZCARD', rateLimitKey('steady'))), 3, 'counted on the master the sentinel named')
  await waitFor(async () => respInteger(await group.replica.command('ZCARD', rateLimitKey('steady'))) === 3 ? true : undefined, { timeoutMs: 5000, what: 'the count replicated' })

  // Kill the master under traffic; keep sending until the sentinel has elected the replica and the gateway uses it.
  await group.master.stop()
  const killedAt = performance.now()
  const during: number[] = []
  await waitFor(async () => {
    during.push(await generate(`during-${during.length}`))
    return await group.currentMasterPort() === group.replica.port && logLines(gateway, FAILOVER_LOG_MESSAGES.recovered).length > 0 ? true : undefined
  }, { timeoutMs: 30_000, intervalMs: 100, what: 'the replica promoted and the gateway back on Redis' })
  t.comment(`back on Redis (the promoted replica) ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the master was killed`)
  t.ok(during.length > 3, `${during.length} requests while the master was gone`)
  t.same(during.filter((status) => status !== 200), [], 'every one 200 (the users are fresh): no 5xx, the fallback answered during the election')
  t.equal(logLines(gateway, FAILOVER_LOG_MESSAGES.fallback).length, 1, 'one warning for the switch to the fallback')

  // On the promoted replica now: the 3 counted before still count, so 2 more are allowed, then 429.
  const after: number[] = []
  for (let i = 0; i < 3; i++) after.push(await generate('steady'))
  t.same(after, [200, 200, 429], 'the limit holds across the failover: the earlier counts were replicated')
  t.equal(respInteger(await group.replica.command('ZCARD', rateLimitKey('steady'))), N, 'counted on the new master')
  await waitFor(async () => (await health(gateway)).body.status === 'healthy' ? true : undefined, { timeoutMs: 10_000, intervalMs: 200, what: '/health healthy on the new master' })
})
