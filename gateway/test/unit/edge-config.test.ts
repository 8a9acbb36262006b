// Configuration of rate limiting, Redis and the cache in the gateway's table: the defaults of issues 4 and 5, small windows and TTLs allowed for tests, and bad values refused naming the variable.
import t from 'tap'
import { configProblems } from '../../../common/testkit/config.js'
import { loadConfig } from '../../src/config.js'

const problems = (env: Record<string, string>): string[] => configProblems(loadConfig, env)

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.equal(config.rateLimitEnabled, true)
  t.equal(config.rateLimitPerWindow, 30)
  t.equal(config.rateLimitWindowSeconds, 60)
  t.equal(config.rateLimitFailureMode, 'memory')
  t.equal(config.redisUrl, undefined, 'no Redis unless REDIS_URL is set')
  t.equal(config.redisTimeoutMs, 100)
  t.equal(config.cacheEnabled, false)
  t.equal(config.cacheTtlSeconds, 3600)
  t.equal(config.cacheMaxEntryBytes, 256 * 1024)
  t.equal(config.cacheNamespace, 'v1')
  t.equal(config.cacheScope, 'global')
  t.equal(config.cacheMemoryMaxBytes, 64 * 1024 * 1024)
})

t.test('set values, a 1 s window and a 1 s TTL included', async (t) => {
  const config = loadConfig({
    AI_ENGINE_RATE_LIMIT_ENABLED: 'false',
    AI_ENGINE_RATE_LIMIT_PER_MIN: '5',
    AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS: '1',
    AI_ENGINE_RATE_LIMIT_FAILURE_MODE: 'Closed',
    REDIS_URL: 'redis://:secret@redis:6379/2',
    AI_ENGINE_REDIS_TIMEOUT_MS: '50',
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_ENGINE_CACHE_TTL_SECONDS: '1',
    AI_ENGINE_CACHE_SCOPE: 'user'
  })
  t.equal(config.rateLimitEnabled, false)
  t.equal(config.rateLimitPerWindow, 5)
  t.equal(config.rateLimitWindowSeconds, 1)
  t.equal(config.rateLimitFailureMode, 'closed')
  t.equal(config.redisUrl?.host, 'redis:6379')
  t.equal(config.redisTimeoutMs, 50)
  t.equal(config.cacheEnabled, true)
  t.equal(config.cacheTtlSeconds, 1)
  t.equal(config.cacheScope, 'user')
})

t.test('bad values are refused, every variable named at once', async (t) => {
  const found = problems({
    AI_ENGINE_RATE_LIMIT_PER_MIN: '0',
    AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS: '0.5',
    AI_ENGINE_RATE_LIMIT_FAILURE_MODE: 'sometimes',
    REDIS_URL: 'http://user:hunter2@redis:6379',
    AI_ENGINE_CACHE_NAMESPACE: 'has:colon',
    AI_ENGINE_CACHE_SCOPE: 'team'
  })
  for (const name of ['AI_ENGINE_RATE_LIMIT_PER_MIN', 'AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS', 'AI_ENGINE_RATE_LIMIT_FAILURE_MODE', 'REDIS_URL', 'AI_ENGINE_CACHE_NAMESPACE', 'AI_ENGINE_CACHE_SCOPE']) {
    t.ok(found.some((problem) => problem.startsWith(name)), name)
  }
  t.equal(found.length, 6)
  t.notOk(found.join('\n').includes('hunter2'), 'a REDIS_URL password is never quoted')
})
