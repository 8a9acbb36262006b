// upstream-ai configuration: defaults, the provider choice rules, and every problem named by its variable.
import t from 'tap'
import { configProblems } from '../../../common/testkit/config.js'
import { loadConfig, SETTINGS } from '../../src/config.js'

const problemsOf = (env: Record<string, string>): string[] => configProblems(loadConfig, env)

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.match(config, {
    host: '0.0.0.0',
    port: 8001,
    provider: 'mock',
    providerDefaulted: true,
    openaiModelDefault: 'gpt-4o-mini',
    timeoutSeconds: 30,
    mockLatencyMs: 20,
    maxBodyBytes: 1_048_576,
    shutdownGraceSeconds: 25,
    effectiveLogLevel: 'info'
  })
  t.equal(config.openaiBaseUrl.href, 'https://api.openai.com/v1')
  t.ok(Object.isFrozen(config))
})

t.test('the provider: openai when a key is set, mock otherwise, or as chosen', async (t) => {
  t.match(loadConfig({ OPENAI_API_KEY: 'k' }), { provider: 'openai', providerDefaulted: false })
  t.match(loadConfig({ OPENAI_API_KEY: 'k', AI_PROVIDER: 'mock' }), { provider: 'mock', providerDefaulted: false })
  t.match(loadConfig({ AI_PROVIDER: 'MOCK' }), { provider: 'mock', providerDefaulted: false })
  t.match(problemsOf({ AI_PROVIDER: 'openai' }), [/OPENAI_API_KEY/])
  t.match(problemsOf({ ENVIRONMENT: 'production' }), [/ENVIRONMENT=production needs OPENAI_API_KEY/])
  t.same(problemsOf({ ENVIRONMENT: 'production', AI_PROVIDER: 'mock' }), [])
})

t.test('bad values name their variable, all at once', async (t) => {
  const problems = problemsOf({ PORT: '70000', AI_ENGINE_TIMEOUT_SECONDS: 'soon', MOCK_PROVIDER_LATENCY_MS: '-5', AI_UPSTREAM_MAX_BODY_BYTES: '1.5' })
  t.equal(problems.length, 4)
  t.match(problems, [/^PORT=/, /^AI_ENGINE_TIMEOUT_SECONDS=/, /^MOCK_PROVIDER_LATENCY_MS=/, /^AI_UPSTREAM_MAX_BODY_BYTES=/])
  t.match(problemsOf({ OPENAI_BASE_URL: 'https://user:pw@example.com/v1' }), [/OPENAI_BASE_URL must not carry credentials/])
  t.match(problemsOf({ OPENAI_MODEL_DEFAULT: 'two words' }), [/^OPENAI_MODEL_DEFAULT=/])
})

t.test('DEBUG turns on debug logs unless LOG_LEVEL says otherwise', async (t) => {
  t.equal(loadConfig({ DEBUG: 'true' }).effectiveLogLevel, 'debug')
  t.equal(loadConfig({ DEBUG: 'true', LOG_LEVEL: 'warn' }).effectiveLogLevel, 'warn')
})

t.test('every setting is described for docs/configuration.md', async (t) => {
  for (const [key, setting] of Object.entries(SETTINGS)) {
    t.ok(setting.description.length > 10, `${key} has a description`)
  }
})
