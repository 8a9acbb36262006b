/**
 * upstream-ai's settings: one table of env name, default, parser and a line
 * for docs/configuration.md, read once at start and frozen. `loadConfig`
 * adds the checks that span several variables (which provider, and whether
 * it can run).
 */
import {
  COMMON_SETTINGS, ConfigError, listenSettings, integer, loadSettings, number, oneOf, string, url,
  type SettingsOf, type SettingsTable
} from '../../common/src/config.js'

/** upstream-ai's settings table (docs/configuration.md lists every variable; common/test/docs.test.ts checks it). */
export const SETTINGS = {
  ...COMMON_SETTINGS,
  /** HOST (0.0.0.0) and PORT (8001). */
  ...listenSettings(8001),
  /** `openai` or `mock`; unset means openai when OPENAI_API_KEY is set, else mock. @default undefined */
  provider: {
    env: 'AI_PROVIDER',
    default: undefined,
    parse: oneOf(['openai', 'mock']),
    description: '`openai` or `mock`; unset means `openai` when `OPENAI_API_KEY` is set, otherwise `mock`.'
  },
  /** Base URL of an OpenAI-compatible API; requests go to `${OPENAI_BASE_URL}/chat/completions`. @default https://api.openai.com/v1 */
  openaiBaseUrl: {
    env: 'OPENAI_BASE_URL',
    default: new URL('https://api.openai.com/v1'),
    parse: url(),
    description: 'Base URL of an OpenAI-compatible API (OpenAI, vLLM, Ollama, llama.cpp); requests go to `${OPENAI_BASE_URL}/chat/completions`.'
  },
  /** Bearer key for the provider. Never logged, never echoed. @default undefined */
  openaiApiKey: {
    env: 'OPENAI_API_KEY',
    default: undefined,
    parse: string({ minLength: 1 }),
    description: 'API key sent as `Authorization: Bearer …`; never logged nor echoed in errors.'
  },
  /** Model used when a request names none. @default 'gpt-4o-mini' */
  openaiModelDefault: {
    env: 'OPENAI_MODEL_DEFAULT',
    default: 'gpt-4o-mini',
    parse: string({ pattern: /^[A-Za-z0-9._:/@-]{1,128}$/, what: 'a model name (letters, digits, . _ : / @ -)' }),
    description: 'Model used when a request has no `options.model`.'
  },
  /** Deadline for one whole provider call, streaming included, in seconds. @default 30 */
  timeoutSeconds: {
    env: 'AI_ENGINE_TIMEOUT_SECONDS',
    default: 30,
    parse: number({ min: 0.1, max: 3600 }),
    description: 'Deadline for one whole provider call (a stream included), in seconds; past it the answer is `UPSTREAM_TIMEOUT`.'
  },
  /** Most keep-alive connections to the provider. @default 64 */
  openaiMaxConnections: {
    env: 'OPENAI_MAX_CONNECTIONS',
    default: 64,
    parse: integer({ min: 1, max: 10_000 }),
    description: 'Most keep-alive connections the pool opens to the provider.'
  },
  /** Delay before the mock's answer and between its stream deltas, in milliseconds. @default 20 */
  mockLatencyMs: {
    env: 'MOCK_PROVIDER_LATENCY_MS',
    default: 20,
    parse: integer({ min: 0, max: 60_000 }),
    description: 'mock provider: delay before its answer and between its stream deltas, in milliseconds.'
  },
  /** Largest accepted request body, in bytes. @default 1048576 (1 MiB) */
  maxBodyBytes: {
    env: 'AI_UPSTREAM_MAX_BODY_BYTES',
    default: 1_048_576,
    parse: integer({ min: 1, max: 100 * 1_048_576 }),
    description: 'Largest accepted request body in bytes; larger ones get `413 PAYLOAD_TOO_LARGE`.'
  },
  /** On SIGTERM/SIGINT, how long in-flight requests may take to finish, in seconds. @default 25 */
  shutdownGraceSeconds: {
    env: 'AI_UPSTREAM_SHUTDOWN_GRACE_SECONDS',
    default: 25,
    parse: number({ min: 0, max: 3600 }),
    description: 'On SIGTERM/SIGINT, how long in-flight requests may take to finish before their connections are cut, in seconds.'
  }
} satisfies SettingsTable

export type UpstreamAiSettings = SettingsOf<typeof SETTINGS>

export type ProviderName = 'openai' | 'mock'

export interface UpstreamAiConfig extends Omit<UpstreamAiSettings, 'provider'> {
  /** The provider in use, resolved from AI_PROVIDER and OPENAI_API_KEY. */
  readonly provider: ProviderName
  /** True when AI_PROVIDER was unset and no key was given, so the mock was chosen by default. */
  readonly providerDefaulted: boolean
  /** The log level after DEBUG is applied. */
  readonly effectiveLogLevel: string
}

/**
 * Reads and checks the settings; throws ConfigError listing every problem,
 * each naming its variable.
 */
export function loadConfig (env: Record<string, string | undefined> = process.env): UpstreamAiConfig {
  const settings = loadSettings(SETTINGS, env)
  const problems: string[] = []
  const hasKey = settings.openaiApiKey !== undefined
  const provider: ProviderName = settings.provider ?? (hasKey ? 'openai' : 'mock')
  if (provider === 'openai' && !hasKey) {
    problems.push('AI_PROVIDER=openai needs OPENAI_API_KEY to be set (or use AI_PROVIDER=mock).')
  }
  const providerDefaulted = settings.provider === undefined && !hasKey
  // Strict start-up check: production never falls back to the mock silently.
  if (settings.environment === 'production' && providerDefaulted) {
    problems.push('ENVIRONMENT=production needs OPENAI_API_KEY to be set (or AI_PROVIDER=mock chosen explicitly).')
  }
  if (settings.openaiBaseUrl.username !== '' || settings.openaiBaseUrl.password !== '') {
    problems.push('OPENAI_BASE_URL must not carry credentials; use OPENAI_API_KEY.')
  }
  if (settings.openaiBaseUrl.search !== '' || settings.openaiBaseUrl.hash !== '') {
    problems.push('OPENAI_BASE_URL must not have a query or fragment.')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return Object.freeze({
    ...settings,
    provider,
    providerDefaulted,
    effectiveLogLevel: settings.logLevel ?? (settings.debug ? 'debug' : 'info')
  })
}
