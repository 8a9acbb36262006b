// Cache settings: the config rows' defaults match the documented defaults, and bad values (a namespace that would break keys, a zero TTL) are refused at start-up.
import t from 'tap'
import { ConfigError, loadSettings } from '../../../common/src/config.js'
import { CACHE_DEFAULTS, CACHE_SETTINGS } from '../../src/cache/options.js'

t.test('defaults', async (t) => {
  t.same(loadSettings(CACHE_SETTINGS, {}), {
    cacheEnabled: false,
    cacheTtlSeconds: 3600,
    cacheMaxEntryBytes: 262144,
    cacheNamespace: 'v1',
    cacheScope: 'global',
    cacheMemoryMaxBytes: 67108864
  })
  t.equal(CACHE_DEFAULTS.redisTimeoutMs, 100)
})

t.test('values from the environment', async (t) => {
  const settings = loadSettings(CACHE_SETTINGS, {
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_ENGINE_CACHE_TTL_SECONDS: '60',
    AI_ENGINE_CACHE_NAMESPACE: 'v2.2024-06',
    AI_ENGINE_CACHE_SCOPE: 'USER'
  })
  t.match(settings, { cacheEnabled: true, cacheTtlSeconds: 60, cacheNamespace: 'v2.2024-06', cacheScope: 'user' })
})

t.test('every bad value is reported at once', async (t) => {
  const error = t.throws(() => loadSettings(CACHE_SETTINGS, {
    AI_ENGINE_CACHE_TTL_SECONDS: '0',
    AI_ENGINE_CACHE_NAMESPACE: 'v1:admin',
    AI_ENGINE_CACHE_SCOPE: 'team'
  })) as ConfigError
  t.type(error, ConfigError)
  t.equal(error.problems.length, 3)
  t.match(error.problems.join('\n'), /AI_ENGINE_CACHE_NAMESPACE/)
})
