// Health through the built gateway with a real redis-server, a throwaway PostgreSQL and a restartable upstream: healthy → degraded (Redis or PostgreSQL down, 200) → unhealthy (upstream-ai down, 503) → healthy again; a frozen Redis answers within 1.5 s; a flood of checks costs one probe per dependency per AI_GATEWAY_HEALTH_CACHE_MS; /health/live probes nothing.
import t from 'tap'
import { freePort, waitFor } from '../../../common/testkit/ports.js'
import { startPostgres } from '../../../common/testkit/postgres.js'
import { startRedis } from '../../../common/testkit/redis.js'
import { startHealthUpstream } from '../helpers/health-upstream.js'
import { call, startGateway, type Reply } from '../helpers/gateway.js'
import type { RunningService } from '../../../common/testkit/process.js'

type Services = Record<'redis' | 'upstream' | 'db', string>

/** Polls /health until its `services` match (probes reconnect with backoff). */
async function healthWhen (gateway: RunningService, services: Partial<Services>, timeoutMs = 10_000): Promise<Reply> {
  return await waitFor(async () => {
    const reply = await call(gateway.url, '/health')
    const body = reply.json()
    return Object.entries(services).every(([name, state]) => body.services[name] === state) ? reply : undefined
  }, { timeoutMs, intervalMs: 100, what: `/health to say ${JSON.stringify(services)}` })
}

t.test('health follows Redis, upstream-ai and PostgreSQL', async (t) => {
  const redis = await startRedis(t)
  const postgres = await startPostgres(t)
  if (postgres === undefined) t.comment('PostgreSQL binaries not found (scripts/install-test-deps.sh installs them): db is checked against a closed port only')
  const upstream = await startHealthUpstream(t)
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_URL: redis.url,
    DATABASE_URL: postgres?.url ?? `postgres://postgres@127.0.0.1:${await freePort()}/postgres`,
    AI_GATEWAY_HEALTH_CACHE_MS: '0'
  })

  t.test('healthy: every configured dependency answers', { skip: postgres === undefined }, async (t) => {
    const reply = await healthWhen(gateway, { redis: 'ok', upstream: 'ok', db: 'ok' })
    t.equal(reply.status, 200)
    const body = reply.json()
    t.equal(body.status, 'healthy')
    t.same(Object.keys(body).sort(), ['checked_at', 'details', 'draining', 'services', 'status'])
    t.ok(Math.abs(Date.parse(body.checked_at) - Date.now()) < 5000 && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(body.checked_at), 'checked_at is ISO 8601, now')
    t.equal(body.draining, false)
    for (const name of ['redis', 'upstream', 'db']) t.match(body.details[name], { ok: true, latency_ms: Number }, `details.${name}`)
    t.equal(reply.headers['cache-control'], 'no-store')
    t.ok(reply.headers['x-request-id'])
    t.equal((await call(gateway.url, '/health/ready')).status, 200)
    t.equal((await call(gateway.url, '/health', { method: 'HEAD' })).status, 200, 'HEAD works for probes')
  })

  t.test('degraded: Redis down, the gateway still serves (200)', async (t) => {
    await redis.stop()
    const reply = await healthWhen(gateway, { redis: 'down' })
    t.equal(reply.status, 200)
    t.equal(reply.json().status, 'degraded')
    t.type(reply.json().details.redis.error, 'string')
    t.equal((await call(gateway.url, '/health/ready')).status, 200, 'ready has the same status code')
  })

  t.test('unhealthy: upstream-ai down as well (503)', async (t) => {
    await upstream.stop()
    const reply = await healthWhen(gateway, { upstream: 'down' })
    t.equal(reply.status, 503)
    t.match(reply.json(), { status: 'unhealthy', services: { redis: 'down', upstream: 'down' }, details: { upstream: { ok: false, error: 'ECONNREFUSED' } } })
    t.equal((await call(gateway.url, '/health/ready')).status, 503, 'ready has the same status code')
    const live = await call(gateway.url, '/health/live')
    t.equal(live.status, 200, 'live: the process is up, no probes')
    t.same(live.json(), { status: 'alive' })
  })

  t.test('healthy again once Redis and upstream-ai are back', { skip: postgres === undefined }, async (t) => {
    await redis.restart()
    await upstream.start()
    const reply = await healthWhen(gateway, { redis: 'ok', upstream: 'ok', db: 'ok' })
    t.equal(reply.status, 200)
    t.equal(reply.json().status, 'healthy')
  })

  t.test('PostgreSQL down: degraded (200); back: healthy', { skip: postgres === undefined }, async (t) => {
    await postgres!.stop()
    const down = await healthWhen(gateway, { db: 'down' })
    t.equal(down.status, 200)
    t.equal(down.json().status, 'degraded')
    t.type(down.json().details.db.error, 'string')
    await postgres!.start()
    const back = await healthWhen(gateway, { db: 'ok', redis: 'ok', upstream: 'ok' })
    t.equal(back.json().status, 'healthy')
  })

  t.test('db down at a closed port', async (t) => {
    const closed = await startGateway(t, {
      AI_UPSTREAM_URL: upstream.url,
      DATABASE_URL: `postgres://postgres:not-a-real-password@127.0.0.1:${await freePort()}/postgres`
    })
    await upstream.start()
    const reply = await call(closed.url, '/health')
    t.equal(reply.status, 200)
    t.match(reply.json(), { status: 'degraded', services: { redis: 'disabled', upstream: 'ok', db: 'down' }, details: { db: { ok: false, error: 'ECONNREFUSED' } } })
    t.notOk([...closed.stdout, ...closed.stderr].join('\n').includes('not-a-real-password'), 'the DATABASE_URL password is never logged')
  })

  t.test('health checks are not in the completion log', async (t) => {
    t.equal(gateway.logs().filter((line) => line.msg === 'request completed').length, 0)
  })
})

t.test('a frozen Redis (SIGSTOP) keeps /health answering within 1.5 s and reports it down', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startHealthUpstream(t)
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_GATEWAY_HEALTH_CACHE_MS: '0' })
  await healthWhen(gateway, { redis: 'ok', upstream: 'ok' })
  redis.freeze()
  t.teardown(() => { redis.thaw() })
  for (let i = 0; i < 3; i++) {
    const started = Date.now()
    const reply = await call(gateway.url, '/health')
    const elapsed = Date.now() - started
    t.ok(elapsed < 1500, `answered in ${elapsed} ms`)
    t.equal(reply.status, 200)
    t.match(reply.json(), { status: 'degraded', services: { redis: 'down', upstream: 'ok' } })
  }
  redis.thaw()
  await healthWhen(gateway, { redis: 'ok' })
})

t.test('a flood of health checks costs at most one probe per dependency per AI_GATEWAY_HEALTH_CACHE_MS', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startHealthUpstream(t)
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, REDIS_URL: redis.url, AI_GATEWAY_HEALTH_CACHE_MS: '1000' })
  await waitFor(async () => (await redis.command('PING')).startsWith('+PONG') && gateway.logs().some((line) => line.msg === 'redis connected') ? true : undefined, { what: 'the gateway to connect to Redis' })
  const pings = async (): Promise<number> => Number(/cmdstat_ping:calls=(\d+)/.exec(await redis.command('INFO', 'commandstats'))?.[1] ?? 0)
  const pingsBefore = await pings()
  const checksBefore = upstream.healthChecks()

  const started = Date.now()
  const durationMs = 2500
  let answered = 0
  await Promise.all(Array.from({ length: 20 }, async () => {
    while (Date.now() - started < durationMs) {
      const reply = await call(gateway.url, '/health')
      if (reply.status === 200) answered++
    }
  }))
  // One probe per started period of 1 s, counted over the time the checks really took.
  const windows = Math.ceil((Date.now() - started) / 1000)
  const upstreamProbes = upstream.healthChecks() - checksBefore
  const redisProbes = await pings() - pingsBefore
  t.ok(answered > 100, `${answered} health checks answered`)
  t.ok(upstreamProbes >= 1 && upstreamProbes <= windows, `${upstreamProbes} upstream probes for ${answered} checks`)
  t.ok(redisProbes >= 1 && redisProbes <= windows, `${redisProbes} Redis PINGs for ${answered} checks`)
})

t.test('health is unhealthy (503) when nothing listens at AI_UPSTREAM_URL', async (t) => {
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: `http://127.0.0.1:${await freePort()}` })
  const reply = await call(gateway.url, '/health')
  t.equal(reply.status, 503)
  t.match(reply.json(), { status: 'unhealthy', services: { redis: 'disabled', upstream: 'down', db: 'disabled' }, details: { upstream: { ok: false, error: 'ECONNREFUSED' } } })
  t.equal((await call(gateway.url, '/health/live')).status, 200)
})
