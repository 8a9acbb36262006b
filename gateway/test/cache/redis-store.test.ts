// The Redis store on a real redis-server: the store conformance suite with a real 1 s TTL, then what it writes to Redis and how it fails.
import t from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { createRedisStore } from '../../src/cache/redis-store.js'
import { encodeEntry } from '../../src/cache/store.js'
import { connectRedis, sampleEntry } from './fixtures/helpers.js'
import { storeConformance } from './fixtures/store-conformance.js'

// These tests are about what the store does, not about latency: a generous command timeout keeps a
// loaded 2-core CI machine from turning a slow reply into a failure (the hot-path 100 ms is exercised
// in failover-store.test.ts, where it matters).
const RELAXED = { commandTimeout: 2000 }

t.test('conformance', async (t) => {
  const server = await startRedis(t)
  const redis = await connectRedis(t, server.url, RELAXED)
  storeConformance(t, async () => {
    const maxEntryBytes = 4096
    return {
      store: createRedisStore({ redis, maxEntryBytes }),
      maxEntryBytes,
      elapse: async (ms) => { await new Promise((resolve) => setTimeout(resolve, ms)) }
    }
  })
})

t.test('SET … EX: the value is the wire form and Redis holds the TTL', async (t) => {
  const server = await startRedis(t)
  const redis = await connectRedis(t, server.url, RELAXED)
  const store = createRedisStore({ redis })
  await store.set('ai_cache:v1:summary:abc', sampleEntry(), 3600)
  t.equal(await redis.get('ai_cache:v1:summary:abc'), encodeEntry(sampleEntry()))
  const ttl = await redis.ttl('ai_cache:v1:summary:abc')
  t.ok(ttl > 3590 && ttl <= 3600, `ttl ${ttl}`)
})

t.test('a value that is not a well-formed entry reads as a miss', async (t) => {
  const server = await startRedis(t)
  const redis = await connectRedis(t, server.url, RELAXED)
  const store = createRedisStore({ redis })
  await redis.set('garbage', 'not json')
  await redis.set('wrong-shape', JSON.stringify({ storedAtMs: 1, answer: { text: 1 } }))
  await redis.hset('a-hash', 'field', 'value')
  t.equal(await store.get('garbage'), undefined)
  t.equal(await store.get('wrong-shape'), undefined)
  t.equal(await store.get('a-hash'), undefined, 'WRONGTYPE is a miss, not a fault')
})

t.test('ping answers while Redis is up', async (t) => {
  const server = await startRedis(t)
  const redis = await connectRedis(t, server.url, RELAXED)
  await t.resolves(createRedisStore({ redis }).ping())
})

t.test('with Redis stopped, get, set and ping reject quickly (the failover store decides what to do)', async (t) => {
  const server = await startRedis(t)
  const redis = await connectRedis(t, server.url, RELAXED)
  const store = createRedisStore({ redis })
  await server.stop()
  const started = performance.now()
  await t.rejects(store.get('k'))
  await t.rejects(store.set('k', sampleEntry(), 60))
  await t.rejects(store.ping())
  const elapsed = performance.now() - started
  t.ok(elapsed < 1500, `three calls took ${Math.round(elapsed)} ms`)
})
