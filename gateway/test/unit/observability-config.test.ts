// Observability settings: AI_GATEWAY_HEALTH_CACHE_MS, AI_GATEWAY_METRICS_PORT and DATABASE_URL parse, default, and refuse bad values (a metrics port equal to PORT; a DATABASE_URL named but never quoted).
import t from 'tap'
import { ConfigError } from '../../../common/src/config.js'
import { loadConfig } from '../../src/config.js'

t.test('defaults', async (t) => {
  const config = loadConfig({ ENVIRONMENT: 'test' })
  t.equal(config.healthCacheMs, 1000)
  t.equal(config.metricsPort, undefined)
  t.equal(config.databaseUrl, undefined)
})

t.test('values', async (t) => {
  const config = loadConfig({ ENVIRONMENT: 'test', AI_GATEWAY_HEALTH_CACHE_MS: '0', AI_GATEWAY_METRICS_PORT: '9464', DATABASE_URL: 'postgresql://app:pw@db:5432/app' })
  t.equal(config.healthCacheMs, 0)
  t.equal(config.metricsPort, 9464)
  t.equal(config.databaseUrl?.hostname, 'db')
  t.equal(loadConfig({ ENVIRONMENT: 'test', PORT: '0', AI_GATEWAY_METRICS_PORT: '0' }).metricsPort, 0, 'both 0: two free ports')
})

t.test('problems', async (t) => {
  const error = t.throws(() => loadConfig({
    ENVIRONMENT: 'test', AI_GATEWAY_HEALTH_CACHE_MS: '-1', AI_GATEWAY_METRICS_PORT: '70000', DATABASE_URL: 'mysql://app:hunter2@db/app'
  })) as ConfigError
  t.type(error, ConfigError)
  t.match(error.message, /AI_GATEWAY_HEALTH_CACHE_MS="-1": expected at least 0/)
  t.match(error.message, /AI_GATEWAY_METRICS_PORT="70000": expected at most 65535/)
  t.match(error.message, /DATABASE_URL: expected a URL starting with postgres: or postgresql:/)
  t.notMatch(error.message, /hunter2/, 'the DATABASE_URL is never quoted')
  const same = t.throws(() => loadConfig({ ENVIRONMENT: 'test', PORT: '8080', AI_GATEWAY_METRICS_PORT: '8080' })) as ConfigError
  t.match(same.message, /AI_GATEWAY_METRICS_PORT=8080: expected a port other than PORT/)
})
