// Scenario 23, a real Redis Cluster on loopback (3 masters, 3 replicas): REDIS_CLUSTER_NODES config, slots as Redis computes them, the limiter (exact, one slot per user) and the cache on the cluster through the gateway, then a master killed: no 5xx, the fallback answers while its slots have no master, a replica takes over, the gateway goes back to the cluster by itself and the counts made before survive.
import t from 'tap'
import { ConfigError } from '../../../common/src/config.js'
import { sleep, waitFor } from '../../../common/testkit/ports.js'
import { startRedisCluster, type RedisCluster } from '../../../common/testkit/redis-cluster.js'
import { loadConfig } from '../../src/config.js'
import { FAILOVER_LOG_MESSAGES } from '../../src/ratelimit/failover-limiter.js'
import { rateLimitKey } from '../../src/ratelimit/keys.js'
import { PROBE_KEY } from '../../src/ratelimit/redis-limiter.js'
import { clusterKeySlot, clusterNodes } from '../../src/redis.js'
import { bearer, call, startGateway, TEST_SECRET, type Reply } from '../helpers/gateway.js'
import { answerGenerate, generateBody, statusCounts } from '../helpers/generate.js'
import { health, logLines } from '../helpers/reliability.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('REDIS_CLUSTER_NODES: parsed, and refused next to REDIS_URL without quoting either', async (t) => {
  t.match(clusterNodes('127.0.0.1:7000, 10.0.0.2:7001,[::1]:7002,redis-3'), {
    nodes: [{ host: '127.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }, { host: '::1', port: 7002 }, { host: 'redis-3', port: 6379 }], tls: false, password: undefined
  })
  t.match(clusterNodes('rediss://gw:s%40cret@a:7000,b:7001'), { nodes: [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }], username: 'gw', password: 's@cret', tls: true })
  t.throws(() => clusterNodes('redis://:one@a:1,redis://:two@b:2'), /node 2: every node URL must carry the same credentials/)
  t.throws(() => clusterNodes('redis://a:1/2'), /database 0 only/)
  t.throws(() => clusterNodes(' , '), /at least one/)
  const base = { ENVIRONMENT: 'test', JWT_SECRET_KEY: TEST_SECRET }
  t.same(loadConfig({ ...base, REDIS_CLUSTER_NODES: 'a:7000,b:7001' }).redisClusterNodes?.nodes.length, 2)
  try {
    loadConfig({ ...base, REDIS_URL: 'redis://:hunter2@redis:6379', REDIS_CLUSTER_NODES: 'redis://:hunter2@a:7000' })
    t.fail('accepted both')
  } catch (error) {
    t.ok(error instanceof ConfigError)
    t.match((error as Error).message, /REDIS_URL and REDIS_CLUSTER_NODES are both set/)
    t.notMatch((error as Error).message, /hunter2/, 'no password in the message')
  }
  try {
    loadConfig({ ...base, REDIS_CLUSTER_NODES: 'redis://:hunter2@a:7000,redis://:other@b:7001' })
    t.fail('accepted mismatched credentials')
  } catch (error) {
    t.match((error as Error).message, /REDIS_CLUSTER_NODES/)
    t.notMatch((error as Error).message, /hunter2|other/, 'no password in the message')
  }
})

/** The master (port) serving `key`'s slot, from CLUSTER NODES. */
async function ownerPort (cluster: RedisCluster, key: string): Promise<number> {
  const slot = clusterKeySlot(key)
  const owner = (await cluster.topology()).find((node) => node.role === 'master' && !node.flags.includes('fail') && node.slots.some(([first, last]) => slot >= first && slot <= last))
  if (owner === undefined) throw new Error(`no live master for slot ${slot}`)
  return owner.port
}

t.test('the gateway on a 3-master cluster with replicas, and a master killed', async (t) => {
  const N = 3
  const cluster = await startRedisCluster(t, { masters: 3, replicas: 1, nodeTimeoutMs: 1000 })
  const first = cluster.nodes[0]!.port

  t.test('the slots the gateway computes are the ones Redis computes', async (t) => {
    const keys = [rateLimitKey('alice'), rateLimitKey('{alice}'), rateLimitKey('x'.repeat(300)), `${PROBE_KEY}:{3560}`, PROBE_KEY, 'ai_cache:v1:horoscope_daily:abc', 'a{}b', '{}', 'no-tag', 'é{ü}']
    for (const key of keys) t.equal(clusterKeySlot(key), Number((await cluster.cli(first, 'CLUSTER', 'KEYSLOT', key)).trim()), key.slice(0, 40))
  })

  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_CLUSTER_NODES: cluster.seeds,
    AI_ENGINE_RATE_LIMIT_PER_MIN: String(N),
    AI_ENGINE_REDIS_TIMEOUT_MS: '500',
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_GATEWAY_HEALTH_CACHE_MS: '0'
  })
  await waitFor(() => logLines(gateway, 'redis connected').length > 0 ? true : undefined, { timeoutMs: 10_000, what: 'redis connected' })
  t.match(logLines(gateway, 'using Redis')[0], { redis: `redis cluster ${cluster.seeds}` }, 'start-up names the cluster')
  t.match(await health(gateway), { status: 200, body: { status: 'healthy', services: { redis: 'ok' } } }, '/health: redis ok (every master answered)')

  // One user per master.
  const masters = (await cluster.topology()).filter((node) => node.role === 'master').map((node) => node.port)
  const users = new Map<number, string>()
  for (let i = 0; users.size < masters.length; i++) {
    const port = await ownerPort(cluster, rateLimitKey(`user-${i}`))
    if (!users.has(port)) users.set(port, `user-${i}`)
  }
  const generate = async (user: string, sign = 'leo'): Promise<Reply> => await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: user }), body: generateBody(sign, { options: { temperature: 0.5 } }) })

  t.test('the limiter on every shard: N allowed, then 429; ZCARD = N on the master serving the user', async (t) => {
    for (const [port, user] of users) {
      const replies: Reply[] = []
      for (let i = 0; i <= N; i++) replies.push(await generate(user))
      t.same(replies.map((reply) => reply.status), [200, 200, 200, 429], `${user} (master :${port})`)
      t.equal((await cluster.cli(port, 'ZCARD', rateLimitKey(user))).trim(), String(N))
    }
    const auth = await bearer({ sub: 'burst-on-cluster' })
    const burst = await Promise.all(Array.from({ length: 100 }, async () => await call(gateway.url, '/v1/ai/generate', { headers: auth, body: generateBody('burst', { options: { temperature: 0.5 } }) })))
    t.same(statusCounts(burst), { 200: N, 429: 100 - N }, '100 concurrent requests of one user: exactly N allowed')
  })

  t.test('the cache on the cluster: a miss stores, the next is a hit', async (t) => {
    const ask = async (): Promise<Reply> => await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: `cache-${Math.random()}` }), body: generateBody('cluster-cache') })
    t.equal((await ask()).headers['x-cache'], 'MISS')
    t.equal((await ask()).headers['x-cache'], 'HIT')
    const stored = (await Promise.all(masters.map(async (port) => await cluster.cli(port, '--scan', '--pattern', 'ai_cache:*')))).join('').trim().split('\n').filter((line) => line !== '')
    t.equal(stored.length, 1, 'one entry, on one master')
  })

  t.test('a master killed: no 5xx, the fallback while its slots have no master, then the replica', async (t) => {
    const [victimPort, victimUser] = [...users][0]!
    const victim = cluster.nodes.find((node) => node.port === victimPort)!
    const killedAt = performance.now()
    await victim.stop()
    const statuses: number[] = []
    let sawDegraded = false
    let i = 0
    await waitFor(async () => {
      statuses.push((await generate(`during-${i++}`)).status)
      if ((await health(gateway)).body.status === 'degraded') sawDegraded = true
      return gateway.logs().some((line) => line.msg === FAILOVER_LOG_MESSAGES.recovered) ? true : undefined
    }, { timeoutMs: 30_000, intervalMs: 50, what: 'the limiter back on the cluster' })
    t.comment(`back on the cluster ${((performance.now() - killedAt) / 1000).toFixed(1)} s after the kill, ${statuses.length} requests meanwhile`)
    t.same(statuses.filter((status) => status !== 200), [], 'every request meanwhile answered 200 (fresh users, from memory or the cluster)')
    t.ok(sawDegraded, '/health said degraded while a master was missing')
    t.equal(logLines(gateway, FAILOVER_LOG_MESSAGES.fallback, 'warn').length, 1, 'one warning: the limiter switched to the fallback')
    t.ok(logLines(gateway, 'redis cluster node error', 'warn').length >= 1, 'the lost node is named in a warning')
    await cluster.waitUntilOk()
    const promoted = await ownerPort(cluster, rateLimitKey(victimUser))
    t.not(promoted, victimPort, `a replica (:${promoted}) serves the dead master's slots`)

    await waitFor(async () => (await health(gateway)).body.status === 'healthy' ? true : undefined, { timeoutMs: 10_000, intervalMs: 200, what: '/health healthy again' })
    t.equal((await generate(victimUser)).status, 429, 'the counts made before the kill survived on the replica: still N in the window')
    t.equal((await cluster.cli(promoted, 'ZCARD', rateLimitKey(victimUser))).trim(), String(N))
    let fresh = 'fresh-0'
    for (let n = 1; await ownerPort(cluster, rateLimitKey(fresh)) !== promoted; n++) fresh = `fresh-${n}`
    t.equal((await generate(fresh)).status, 200)
    t.equal((await cluster.cli(promoted, 'ZCARD', rateLimitKey(fresh))).trim(), '1', 'a new user on those slots is counted on the promoted replica')
    t.equal((await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: 'cache-after' }), body: generateBody('cluster-cache') })).headers['x-cache'], 'HIT', 'the cached answer is still served')
    await sleep(100)
    t.equal(logLines(gateway, FAILOVER_LOG_MESSAGES.recovered, 'info').length, 1, 'one info line: back on the cluster')
  })
})
