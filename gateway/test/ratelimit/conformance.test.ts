// One limiter conformance suite run against the Redis limiter (a real redis-server) and the memory limiter.
import t from 'tap'
import { startRedis } from '../../../common/testkit/redis.js'
import { createMemoryLimiter } from '../../src/ratelimit/memory-limiter.js'
import { createRedisLimiter } from '../../src/ratelimit/redis-limiter.js'
import { limiterConformance } from './fixtures/limiter-conformance.js'
import { readyClient } from './fixtures/setup.js'

const server = await startRedis(t)
const redis = await readyClient(t, server)

limiterConformance('redis', 'redis', async (_t, options) => createRedisLimiter({ redis, ...options }))
limiterConformance('memory', 'memory', async (_t, options) => createMemoryLimiter(options))
