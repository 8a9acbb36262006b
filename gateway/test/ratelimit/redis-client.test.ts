// The shared Redis client for the hot path: fails fast while disconnected, reconnects forever, logs without the password.
import t from 'tap'
import { freePort, waitFor } from '../../../common/testkit/ports.js'
import { startRedis } from '../../../common/testkit/redis.js'
import {
  closeRedisClient, createRedisClient, DeadlineExceededError, isRedisReady, pingRedis, reconnectDelay, redactRedisUrl, withDeadline
} from '../../src/redis.js'
import { captureLogs, timed } from './fixtures/setup.js'

t.test('nothing listening: commands fail at once, no unhandled error, one warning then debug lines, no password', async (t) => {
  const logs = captureLogs()
  const port = await freePort()
  const redis = createRedisClient({ url: `redis://:s3cret-pass@127.0.0.1:${port}`, logger: logs.logger })
  t.teardown(() => { redis.disconnect(false) })
  const { value, ms } = await timed(async () => await redis.get('k').then(() => 'answered', (error: Error) => error.message))
  t.match(value, /enableOfflineQueue/, 'rejected, not queued')
  t.ok(ms < 200, `rejected in ${ms.toFixed(1)} ms (no waiting for a connection)`)
  t.equal(isRedisReady(redis), false)
  t.equal(await pingRedis(redis, 100), false)
  await waitFor(() => logs.withMsg('redis connection error', 'debug').length >= 2 ? true : undefined, { timeoutMs: 10_000, what: 'reconnection attempts' })
  t.equal(logs.withMsg('redis connection error', 'warn').length, 1, 'one warning per outage')
  const text = JSON.stringify(logs.lines)
  t.notMatch(text, /s3cret-pass/, 'the password is never logged')
  t.match(logs.withMsg('redis connection error', 'warn')[0], { redis: `redis://:***@127.0.0.1:${port}` })
})

t.test('connects, survives a restart of Redis, and is ready again without help', async (t) => {
  const server = await startRedis(t)
  const logs = captureLogs()
  const redis = createRedisClient({ url: server.url, logger: logs.logger })
  t.teardown(() => { redis.disconnect(false) })
  await waitFor(() => isRedisReady(redis) ? true : undefined, { timeoutMs: 10_000, what: 'ready' })
  t.equal(await pingRedis(redis, 1000), true)
  t.equal(logs.withMsg('redis connected', 'info').length, 1)

  await server.stop()
  await waitFor(() => isRedisReady(redis) ? undefined : true, { timeoutMs: 10_000, what: 'not ready' })
  const { ms } = await timed(async () => await redis.ping().catch(() => undefined))
  t.ok(ms < 200, `a command while down fails in ${ms.toFixed(1)} ms`)

  await server.restart()
  await waitFor(() => isRedisReady(redis) ? true : undefined, { timeoutMs: 20_000, what: 'ready again' })
  t.equal(logs.withMsg('redis connection lost', 'warn').length, 1, 'one warning for the outage')
  t.equal(logs.lines.filter((line) => line.level === 'warn').length, 1, 'and no other')
  t.equal(logs.withMsg('redis connection restored', 'info').length, 1)
  t.equal(await redis.set('k', 'v'), 'OK', 'usable again')
})

t.test('a frozen Redis: a command times out after commandTimeoutMs instead of hanging', async (t) => {
  const server = await startRedis(t)
  const redis = createRedisClient({ url: server.url, commandTimeoutMs: 100, logger: captureLogs().logger })
  t.teardown(() => { redis.disconnect(false) })
  await waitFor(() => isRedisReady(redis) ? true : undefined, { timeoutMs: 10_000, what: 'ready' })
  server.freeze()
  t.teardown(() => { server.thaw() })
  const { value, ms } = await timed(async () => await redis.get('k').then(() => 'answered', (error: Error) => error.message))
  t.equal(value, 'Command timed out')
  t.ok(ms >= 90 && ms < 600, `gave up after ${ms.toFixed(1)} ms`)
  t.equal(await pingRedis(redis, 50), false, 'pingRedis honours its own deadline')
  server.thaw()
})

t.test('closeRedisClient quits, even when Redis is gone', async (t) => {
  const server = await startRedis(t)
  const redis = createRedisClient({ url: server.url, logger: captureLogs().logger })
  await waitFor(() => isRedisReady(redis) ? true : undefined, { timeoutMs: 10_000, what: 'ready' })
  await closeRedisClient(redis)
  t.equal(redis.status, 'end')
  const gone = createRedisClient({ url: `redis://127.0.0.1:${await freePort()}`, logger: captureLogs().logger })
  await closeRedisClient(gone)
  t.equal(gone.status, 'end')
})

t.test('reconnectDelay doubles from 50 ms and is capped', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 7, 100, 100_000].map((attempt) => reconnectDelay(attempt)), [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000])
  t.equal(reconnectDelay(3, 150), 150)
})

t.test('redactRedisUrl', async (t) => {
  t.equal(redactRedisUrl('redis://user:pa%40ss@host:6380/2'), 'redis://user:***@host:6380/2')
  t.equal(redactRedisUrl('rediss://host:6380'), 'rediss://host:6380')
  t.equal(redactRedisUrl('not a url'), '[unparseable redis url]')
})

t.test('withDeadline', async (t) => {
  t.equal(await withDeadline(Promise.resolve(1), 50), 1)
  await t.rejects(withDeadline(new Promise(() => {}), 20), DeadlineExceededError)
  // A late rejection after the deadline must not surface as unhandled.
  let rejectLate!: (error: Error) => void
  const late = new Promise<never>((_resolve, reject) => { rejectLate = reject })
  await t.rejects(withDeadline(late, 10), DeadlineExceededError)
  rejectLate(new Error('late'))
  await new Promise((resolve) => setImmediate(resolve))
  t.pass('no unhandled rejection')
})

t.test('a deliberate close is not logged as an outage', async (t) => {
  const server = await startRedis(t)
  const logs = captureLogs()
  const redis = createRedisClient({ url: server.url, logger: logs.logger })
  await waitFor(() => isRedisReady(redis) ? true : undefined, { timeoutMs: 10_000, what: 'ready' })
  await closeRedisClient(redis)
  t.same(logs.lines.filter((line) => line.level === 'warn'), [])
})
