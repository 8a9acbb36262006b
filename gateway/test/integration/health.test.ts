// Health: /health and /health/ready say healthy (200) while upstream-ai answers its /health and unhealthy (503) when it does not or is gone; /health/live only says the process is up.
import t from 'tap'
import { freePort, sleep } from '../../../common/testkit/ports.js'
import { startUpstream } from '../helpers/upstream.js'
import { call, startGateway } from '../helpers/gateway.js'

t.test('health follows upstream-ai', async (t) => {
  const upstream = await startUpstream(t)
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })

  const healthy = await call(gateway.url, '/health')
  t.equal(healthy.status, 200)
  t.equal(healthy.json().status, 'healthy')
  t.equal(healthy.json().dependencies.upstream_ai.status, 'up')
  t.equal(healthy.headers['cache-control'], 'no-store')
  t.ok(healthy.headers['x-request-id'])
  t.equal((await call(gateway.url, '/health/ready')).status, 200)
  t.equal((await call(gateway.url, '/health', { method: 'HEAD' })).status, 200, 'HEAD works for probes')

  upstream.setHealth(503)
  // A probe result is reused for about a second.
  await sleep(1200)
  const unhealthy = await call(gateway.url, '/health')
  t.equal(unhealthy.status, 503)
  t.equal(unhealthy.json().status, 'unhealthy')
  t.same(unhealthy.json().dependencies.upstream_ai.error, 'HTTP 503')
  t.equal((await call(gateway.url, '/health/ready')).status, 503, 'ready has the same status code')
  const live = await call(gateway.url, '/health/live')
  t.equal(live.status, 200, 'live: the process is up, no probes')
  t.same(live.json(), { status: 'alive' })

  t.equal(gateway.logs().filter((line) => line.msg === 'request completed').length, 0, 'health checks are not in the completion log')
})

t.test('health is 503 when nothing listens at AI_UPSTREAM_URL', async (t) => {
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: `http://127.0.0.1:${await freePort()}` })
  const reply = await call(gateway.url, '/health')
  t.equal(reply.status, 503)
  t.equal(reply.json().dependencies.upstream_ai.status, 'down')
  t.equal(reply.json().dependencies.upstream_ai.error, 'ECONNREFUSED')
  t.equal((await call(gateway.url, '/health/live')).status, 200)
})
