/**
 * The gateway's one Redis client, shared by the rate limiter and the cache,
 * configured for a hot path: a command either gets an answer within
 * `commandTimeoutMs` or fails at once, so callers can fall back instead of
 * waiting. No offline queue (a command sent while disconnected fails
 * immediately), no per-command retries, no replay of unanswered commands after
 * a reconnect (a replayed rate-limit script would count a request twice), and
 * reconnection forever with a capped backoff.
 */
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { integer, url, type SettingsTable } from '../../common/src/config.js'
import type { Logger } from '../../common/src/logger.js'

export type { Redis } from 'ioredis'

/** Settings the gateway's config table can spread in (`...REDIS_SETTINGS`). */
export const REDIS_SETTINGS = {
  redisUrl: {
    env: 'REDIS_URL',
    default: undefined,
    parse: url(['redis:', 'rediss:']),
    // It may carry a password: a problem with it never quotes the value.
    sensitive: true,
    description: 'Redis for the rate limiter and the cache (`redis://` or `rediss://`); unset: in-memory stores, per instance.'
  },
  redisTimeoutMs: {
    env: 'AI_ENGINE_REDIS_TIMEOUT_MS',
    default: 100,
    parse: integer({ min: 1, max: 60_000 }),
    description: 'Longest a request waits on one Redis command before the fallback applies, in milliseconds.'
  }
} satisfies SettingsTable

export interface RedisClientOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS. */
  url: string | URL
  /** A command without a reply after this long fails with "Command timed out". @default 100 */
  commandTimeoutMs?: number
  /** Giving up on one connection attempt (TCP + handshake) after this long. @default 1000 */
  connectTimeoutMs?: number
  /** Longest pause between two reconnection attempts; attempts never stop. @default 2000 */
  maxReconnectDelayMs?: number
  /** Shown in CLIENT LIST. @default 'ai-gateway' */
  connectionName?: string
  logger: Logger
}

/** Delay before reconnection attempt `attempt` (1, 2, …): 50 ms doubling, capped. */
export function reconnectDelay (attempt: number, maxDelayMs = 2000): number {
  return Math.min(maxDelayMs, 50 * 2 ** Math.min(Math.max(attempt - 1, 0), 16))
}

/** The URL without its password, fit for a log line. */
export function redactRedisUrl (raw: string | URL): string {
  try {
    const parsed = new URL(String(raw))
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return '[unparseable redis url]'
  }
}

export function createRedisClient (options: RedisClientOptions): Redis {
  const { logger } = options
  const target = redactRedisUrl(options.url)
  const secrets = passwordForms(options.url)
  const scrub = (message: string): string => secrets.reduce((text, secret) => text.split(secret).join('***'), message)
  const maxDelay = options.maxReconnectDelayMs ?? 2000

  const client = new Redis(String(options.url), {
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs ?? 100,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: options.connectTimeoutMs ?? 1000,
    retryStrategy: (attempt) => reconnectDelay(attempt, maxDelay),
    lazyConnect: false,
    enableReadyCheck: true,
    connectionName: options.connectionName ?? 'ai-gateway'
  })

  // Without an 'error' listener an unreachable Redis would crash the process.
  // One warning per outage ("lost" after having been ready, or the first
  // connection error); ioredis repeats the error on every reconnection
  // attempt, and those repeats are debug lines.
  let everReady = false
  let warned = false
  // 'reconnecting', not 'close': a deliberate quit closes without reconnecting.
  client.on('reconnecting', () => {
    if (everReady && !warned) {
      warned = true
      logger.warn({ redis: target }, 'redis connection lost')
    }
  })
  client.on('error', (error: Error) => {
    const fields = { redis: target, error: scrub(error.message) }
    if (warned) {
      logger.debug(fields, 'redis connection error')
    } else {
      warned = true
      logger.warn(fields, 'redis connection error')
    }
  })
  client.on('ready', () => {
    logger.info({ redis: target }, everReady ? 'redis connection restored' : 'redis connected')
    everReady = true
    warned = false
  })
  return client
}

/** True when commands can be sent now (connected and past the ready check). */
export function isRedisReady (client: Redis): boolean {
  return client.status === 'ready'
}

/**
 * PING within `timeoutMs`; false on any failure. Never waits longer than
 * `timeoutMs`, whatever the client's own settings.
 */
export async function pingRedis (client: Redis, timeoutMs: number): Promise<boolean> {
  if (!isRedisReady(client)) return false
  try {
    return (await withDeadline(client.ping(), timeoutMs)) === 'PONG'
  } catch {
    return false
  }
}

/** QUIT within `timeoutMs`, then drops the connection and stops reconnecting, whatever happened. */
export async function closeRedisClient (client: Redis, timeoutMs = 1000): Promise<void> {
  if (client.status === 'end') return
  const ended = once(client, 'end')
  try {
    if (isRedisReady(client)) await withDeadline(client.quit(), timeoutMs)
  } catch {
    // Closing anyway below.
  }
  client.disconnect(false)
  await withDeadline(ended, timeoutMs).catch(() => {})
}

/** Thrown by withDeadline when the promise has not settled in time. */
export class DeadlineExceededError extends Error {
  readonly code = 'DEADLINE_EXCEEDED'
  constructor (timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`)
    this.name = 'DeadlineExceededError'
  }
}

/**
 * Settles like `promise`, or rejects with DeadlineExceededError after
 * `timeoutMs`. A late rejection of `promise` is absorbed (never unhandled).
 */
export async function withDeadline<T> (promise: Promise<T>, timeoutMs: number): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineExceededError(timeoutMs)), timeoutMs)
    promise.then(
      (value) => { clearTimeout(timer); resolve(value) },
      (error: unknown) => { clearTimeout(timer); reject(error) }
    )
  })
}

/** The URL's password as written and decoded, to scrub from error messages. */
function passwordForms (raw: string | URL): string[] {
  try {
    const encoded = new URL(String(raw)).password
    if (encoded === '') return []
    let decoded = encoded
    try { decoded = decodeURIComponent(encoded) } catch { /* keep the encoded form */ }
    return [...new Set([encoded, decoded])]
  } catch {
    return []
  }
}
