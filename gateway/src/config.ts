/**
 * The gateway's settings: one table of env name, default, parser and a line
 * for docs/configuration.md, read once at start and frozen. `loadConfig`
 * adds the checks that span several variables (the JWT secret in
 * production, timeouts that must nest) and resolves derived values.
 */
import {
  COMMON_SETTINGS, ConfigError, listenSettings, integer, list, loadSettings, number, string, url,
  type SettingsOf, type SettingsTable
} from '../../common/src/config.js'
import { CACHE_SETTINGS } from './cache/options.js'
import { DEV_JWT_SECRET, MIN_JWT_SECRET_BYTES } from './dev-secret.js'
import { RATE_LIMIT_SETTINGS, TOKEN_BUDGET_SETTINGS } from './ratelimit/settings.js'
import { REDIS_SETTINGS } from './redis.js'
import { USAGE_SETTINGS } from './usage/settings.js'

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/

export const SETTINGS = {
  ...COMMON_SETTINGS,
  /** HOST (0.0.0.0) and PORT (8080). */
  ...listenSettings(8080),
  /** Base URL of upstream-ai; `/v1/ai/*` requests go to the same path there. @default http://127.0.0.1:8001 */
  upstreamUrl: {
    env: 'AI_UPSTREAM_URL',
    default: new URL('http://127.0.0.1:8001'),
    parse: url(['http:']),
    description: 'Base URL of upstream-ai (plain `http:` on a private network); `/v1/ai/*` go to the same paths there, `/health` is probed.'
  },
  /** HS256 secret that verifies bearer tokens. Required (≥ 32 bytes) in production. @default undefined */
  jwtSecretKey: {
    env: 'JWT_SECRET_KEY',
    default: undefined,
    parse: string(),
    description: `HS256 secret that verifies bearer tokens. Required in production (at least ${MIN_JWT_SECRET_BYTES} bytes); elsewhere a fixed development secret is used when unset (with a warning).`
  },
  /** When set, tokens must carry exactly this `iss`. @default undefined */
  jwtIssuer: {
    env: 'AI_GATEWAY_JWT_ISSUER',
    default: undefined,
    parse: string({ minLength: 1 }),
    description: 'When set, a token\'s `iss` must equal it.'
  },
  /** When set, a token's `aud` must contain one of these (comma-separated). @default undefined */
  jwtAudience: {
    env: 'AI_GATEWAY_JWT_AUDIENCE',
    default: undefined,
    parse: list(string({ minLength: 1 })),
    description: 'When set (comma-separated), a token\'s `aud` must contain one of these values.'
  },
  /** The `kid` tokens may name; unset: tokens naming any `kid` are refused. @default undefined */
  jwtKeyId: {
    env: 'AI_GATEWAY_JWT_KEY_ID',
    default: undefined,
    parse: string({ minLength: 1 }),
    description: 'The key id (`kid`) of `JWT_SECRET_KEY`: a token whose header names a `kid` must name this one. Unset: a token naming any `kid` is refused. Tokens without `kid` are accepted either way (there is one key).'
  },
  /** Leeway for `exp` and `nbf`, in seconds. @default 30 */
  jwtClockToleranceSeconds: {
    env: 'AI_GATEWAY_JWT_CLOCK_TOLERANCE_SECONDS',
    default: 30,
    parse: integer({ min: 0, max: 60 }),
    description: 'Clock skew allowed when checking `exp` and `nbf`, in seconds (0 to 60).'
  },
  /** Header an authenticating proxy in front sets to the user id; replaces JWT checks. Off when unset. @default undefined */
  trustedUserHeader: {
    env: 'AI_GATEWAY_TRUSTED_USER_HEADER',
    default: undefined,
    parse: (raw: string) => string({ pattern: HEADER_NAME, what: 'an HTTP header name' })(raw).toLowerCase(),
    description: 'Take the user id from this header (e.g. `X-User-Id`) instead of verifying a JWT. Only for a gateway reachable solely through an authenticating proxy that sets it: see the risk in docs/api.md.'
  },
  /** Largest accepted request body, in bytes. @default 1048576 (1 MiB) */
  maxBodyBytes: {
    env: 'AI_GATEWAY_MAX_BODY_BYTES',
    default: 1_048_576,
    parse: integer({ min: 1, max: 64 * 1_048_576 }),
    description: 'Largest accepted request body in bytes; a larger one is refused (413) as soon as the limit is crossed.'
  },
  /** Time a client has to send its request headers, in seconds. @default 10 */
  headersTimeoutSeconds: {
    env: 'AI_GATEWAY_HEADERS_TIMEOUT_SECONDS',
    default: 10,
    parse: number({ min: 0.5, max: 600 }),
    description: 'Time a client has to send the request headers, in seconds; a slower one gets 408 and the connection is closed.'
  },
  /** Time a client has to send the whole request (headers and body), in seconds. @default 30 */
  requestBodyTimeoutSeconds: {
    env: 'AI_GATEWAY_REQUEST_BODY_TIMEOUT_SECONDS',
    default: 30,
    parse: number({ min: 0.5, max: 3600 }),
    description: 'Time a client has to send the whole request (headers and body), in seconds; at least `AI_GATEWAY_HEADERS_TIMEOUT_SECONDS`. A slower one gets 408 and the connection is closed.'
  },
  /** How long an idle client connection is kept open, in seconds. @default 65 */
  keepAliveTimeoutSeconds: {
    env: 'AI_GATEWAY_KEEP_ALIVE_TIMEOUT_SECONDS',
    default: 65,
    parse: number({ min: 1, max: 3600 }),
    description: 'How long an idle client connection stays open, in seconds; keep it above the `keepalive_timeout` of the nginx upstream block so nginx never reuses a connection the gateway is closing.'
  },
  /** Deadline for a non-streaming upstream-ai answer, in seconds. @default 30 */
  engineTimeoutSeconds: {
    env: 'AI_ENGINE_TIMEOUT_SECONDS',
    default: 30,
    parse: number({ min: 0.1, max: 3600 }),
    description: 'Deadline for a whole non-streaming answer from upstream-ai, in seconds; past it the gateway answers 504 `UPSTREAM_TIMEOUT` and aborts the upstream call.'
  },
  /** Longest silence allowed between two chunks of a stream, in seconds. @default 60 */
  streamIdleTimeoutSeconds: {
    env: 'AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS',
    default: 60,
    parse: number({ min: 0.1, max: 3600 }),
    description: 'Longest silence allowed on a stream (before its first chunk and between whole events), in seconds; past it the stream ends with `event: error` (`UPSTREAM_TIMEOUT`). The gateway\'s own pings do not count.'
  },
  /** Time in-flight requests and streams get to finish after SIGTERM/SIGINT, in seconds. @default 25 */
  shutdownGraceSeconds: {
    env: 'AI_GATEWAY_SHUTDOWN_GRACE_SECONDS',
    default: 25,
    parse: number({ min: 0, max: 3600 }),
    description: 'After SIGTERM or SIGINT, time in-flight requests and streams get to finish before the remaining ones are cut, in seconds.'
  },
  /** Most concurrent keep-alive connections to upstream-ai. @default 256 */
  upstreamMaxSockets: {
    env: 'AI_GATEWAY_UPSTREAM_MAX_SOCKETS',
    default: 256,
    parse: integer({ min: 1, max: 65_536 }),
    description: 'Most concurrent connections to upstream-ai (kept alive and reused); further requests queue.'
  },
  /** Most upstream-ai calls in flight at once (queued for a connection included); past it 503 UPSTREAM_OVERLOADED at once. @default 512 */
  maxConcurrentUpstream: {
    env: 'AI_GATEWAY_MAX_CONCURRENT_UPSTREAM',
    default: 512,
    parse: integer({ min: 1, max: 1_000_000 }),
    description: 'Most upstream-ai calls in flight at once, including those waiting for a connection; past it a request is refused at once with 503 `UPSTREAM_OVERLOADED` and `Retry-After: 1` instead of queueing.'
  },
  /** Seconds of silence on a stream after which the gateway sends an SSE comment (`: ping`); 0: never. @default 15 */
  ssePingSeconds: {
    env: 'AI_GATEWAY_SSE_PING_SECONDS',
    default: 15,
    parse: number({ min: 0, max: 3600 }),
    description: 'While a stream\'s upstream is silent, the gateway sends an SSE comment (`: ping`) to the client every this many seconds, so proxies in front (nginx\'s `proxy_read_timeout`) keep it open; `0` turns pings off. Pings do not reset `AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS`.'
  },
  // Observability (docs/observability.md).
  /** How long `/health` reuses its probe results, in ms. @default 1000 */
  healthCacheMs: {
    env: 'AI_GATEWAY_HEALTH_CACHE_MS',
    default: 1000,
    parse: integer({ min: 0, max: 60_000 }),
    description: 'How long `/health` reuses its probe results, in milliseconds; concurrent checks always share one round of probes.'
  },
  /** Port of a separate listener for `GET /metrics`; unset: `/metrics` is served on PORT. @default undefined */
  metricsPort: {
    env: 'AI_GATEWAY_METRICS_PORT',
    default: undefined,
    parse: integer({ min: 0, max: 65535 }),
    description: 'Serve `GET /metrics` on this port (on HOST) instead of PORT, which then answers 404 there; `0` picks a free port, logged in the `metrics listening` line.'
  },
  /** PostgreSQL of the usage ledger, probed by `/health` (`SELECT 1`); unset: no ledger, `db` is `disabled`. @default undefined */
  databaseUrl: {
    env: 'DATABASE_URL',
    default: undefined,
    parse: url(['postgres:', 'postgresql:']),
    sensitive: true,
    description: 'PostgreSQL (`postgres://user:password@host:port/db`) that holds the usage ledger (docs/usage.md) and that `/health` probes with `SELECT 1`; unset: the ledger is off and `db` is `disabled`.'
  },
  // Rate limiting (docs/rate-limiting.md), the shared Redis, and the cache (docs/caching.md).
  ...RATE_LIMIT_SETTINGS,
  ...TOKEN_BUDGET_SETTINGS,
  ...REDIS_SETTINGS,
  ...CACHE_SETTINGS,
  // The usage ledger in PostgreSQL at DATABASE_URL (docs/usage.md).
  ...USAGE_SETTINGS
} satisfies SettingsTable

export type GatewaySettings = SettingsOf<typeof SETTINGS>

export interface GatewayConfig extends GatewaySettings {
  /** The pino level: LOG_LEVEL, else `debug` when DEBUG=true, else `info`. */
  readonly level: string
  /** The HS256 secret in use: JWT_SECRET_KEY, or the development secret outside production. */
  readonly jwtSecret: string
  /** True when the development secret is in use (main logs a warning). */
  readonly usingDevSecret: boolean
}

/** Settings whose env names appear in `problem` strings, for cross-variable checks. */
const env = (key: keyof typeof SETTINGS): string => SETTINGS[key].env

/**
 * The secret that verifies (and, in the dev-token tool, signs) tokens.
 * Production needs a real one; elsewhere the development secret fills in.
 * Returns a problem string instead when production has none that is usable.
 */
export function resolveJwtSecret (
  environment: string,
  secret: string | undefined
): { secret: string; usingDevSecret: boolean } | { problem: string } {
  if (environment === 'production' && (secret === undefined || Buffer.byteLength(secret) < MIN_JWT_SECRET_BYTES)) {
    return {
      problem: `${env('jwtSecretKey')}: ${secret === undefined ? 'required' : `too short (${Buffer.byteLength(secret)} bytes)`} ` +
        `in production; set at least ${MIN_JWT_SECRET_BYTES} random bytes (e.g. \`openssl rand -base64 48\`)`
    }
  }
  return secret === undefined ? { secret: DEV_JWT_SECRET, usingDevSecret: true } : { secret, usingDevSecret: false }
}

export function loadConfig (environment: Record<string, string | undefined> = process.env): GatewayConfig {
  const problems: string[] = []
  let settings: GatewaySettings | undefined
  try {
    settings = loadSettings(SETTINGS, environment)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    problems.push(...error.problems)
  }
  // The secret is checked even when another variable failed, so one start reports every problem.
  const deployment = settings?.environment ?? environment[env('environment')]?.trim().toLowerCase() ?? 'development'
  const secret = environment[env('jwtSecretKey')]?.trim() || undefined
  const trustedHeader = settings?.trustedUserHeader ?? (environment[env('trustedUserHeader')]?.trim() || undefined)
  const jwt = trustedHeader === undefined
    ? resolveJwtSecret(deployment, secret)
    // With a trusted user header no token is verified, so no secret is required (nor warned about).
    : { secret: secret ?? DEV_JWT_SECRET, usingDevSecret: false }
  if ('problem' in jwt) problems.push(jwt.problem)
  if (settings !== undefined && settings.requestBodyTimeoutSeconds < settings.headersTimeoutSeconds) {
    problems.push(`${env('requestBodyTimeoutSeconds')}=${settings.requestBodyTimeoutSeconds}: expected at least ${env('headersTimeoutSeconds')} (${settings.headersTimeoutSeconds}), as it covers the headers too`)
  }
  if (settings?.metricsPort !== undefined && settings.metricsPort !== 0 && settings.metricsPort === settings.port) {
    problems.push(`${env('metricsPort')}=${settings.metricsPort}: expected a port other than ${env('port')}; leave it unset to serve /metrics on ${env('port')}`)
  }
  // One Redis, one Cluster or one Sentinel group: with two, which one holds the limits would be a guess. No value is quoted (passwords).
  const isSet = (name: string): boolean => (environment[name]?.trim() ?? '') !== ''
  const redisTargets = [env('redisUrl'), env('redisClusterNodes'), env('redisSentinels')].filter(isSet)
  if (redisTargets.length > 1) {
    problems.push(`${redisTargets.join(' and ')} are ${redisTargets.length === 2 ? 'both' : 'all'} set: set ${env('redisUrl')} for one Redis, ${env('redisClusterNodes')} for a Redis Cluster or ${env('redisSentinels')} for Redis Sentinel, only one`)
  }
  if (isSet(env('redisSentinels')) !== isSet(env('redisSentinelMaster'))) {
    problems.push(`${env('redisSentinels')} and ${env('redisSentinelMaster')} go together: set both (the sentinels, and the name of the master they monitor) or neither`)
  }
  if (problems.length > 0 || settings === undefined || 'problem' in jwt) throw new ConfigError(problems)
  return Object.freeze({
    ...settings,
    level: settings.logLevel ?? (settings.debug ? 'debug' : 'info'),
    jwtSecret: jwt.secret,
    usingDevSecret: jwt.usingDevSecret
  })
}
