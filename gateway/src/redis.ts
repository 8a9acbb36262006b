/**
 * The gateway's one Redis client, shared by the rate limiter and the cache,
 * configured for a hot path: a command either gets an answer within
 * `commandTimeoutMs` or fails at once, so callers can fall back instead of
 * waiting. No offline queue (a command sent while disconnected fails
 * immediately), no per-command retries, no replay of unanswered commands after
 * a reconnect (a replayed rate-limit script would count a request twice), and
 * reconnection forever with a capped backoff.
 *
 * The same contract holds for a Redis Cluster (REDIS_CLUSTER_NODES,
 * createRedisClusterClient): every key the gateway writes lives in one slot,
 * so each command goes to one shard; probes (keysOnEveryShard, pingEveryShard)
 * reach every master, so a dead shard is not hidden by the live ones.
 */
import { once } from 'node:events'
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { integer, string, url, type SettingsTable } from '../../common/src/config.js'
import type { Logger } from '../../common/src/logger.js'

export type { Cluster, Redis } from 'ioredis'

/** What the limiter and the cache talk to: one Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster

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
  redisClusterNodes: {
    env: 'REDIS_CLUSTER_NODES',
    default: undefined,
    parse: clusterNodes,
    // Its URLs may carry a password: a problem with it never quotes the value.
    sensitive: true,
    description: 'Seed nodes of a Redis Cluster for the rate limiter and the cache (`host:port,…`, or `redis://[user:password@]host:port,…`, `rediss://` for TLS); instead of REDIS_URL, never with it.'
  },
  redisSentinels: {
    env: 'REDIS_SENTINELS',
    default: undefined,
    parse: sentinelNodes,
    // Its URLs may carry the master's password: a problem with it never quotes the value.
    sensitive: true,
    description: 'Redis Sentinel nodes for the rate limiter and the cache (`host:port,…`, port 26379 by default; `redis://[user:password@]host:port,…` to give the master\'s credentials, `rediss://` for TLS to the master); with REDIS_SENTINEL_MASTER, instead of REDIS_URL or REDIS_CLUSTER_NODES.'
  },
  redisSentinelMaster: {
    env: 'REDIS_SENTINEL_MASTER',
    default: undefined,
    parse: string({ pattern: /^[A-Za-z0-9._-]{1,128}$/, what: 'a Sentinel master name' }),
    description: 'The master group name the sentinels monitor (`sentinel monitor <name> …`); required with REDIS_SENTINELS.'
  },
  redisSentinelPassword: {
    env: 'REDIS_SENTINEL_PASSWORD',
    default: undefined,
    parse: string({ minLength: 1 }),
    sensitive: true,
    description: 'The sentinels\' own password (their `requirepass`), when they have one; the master\'s credentials go in REDIS_SENTINELS.'
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

/**
 * The options of a single-server client (REDIS_URL, or the master Sentinel
 * names): no offline queue, the command timeout, no retries or replays,
 * reconnection forever with a capped backoff.
 */
function hotPathOptions (options: Omit<RedisClientOptions, 'url' | 'logger'>): RedisOptions {
  const maxDelay = options.maxReconnectDelayMs ?? 2000
  return {
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeoutMs ?? 100,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: options.connectTimeoutMs ?? 1000,
    retryStrategy: (attempt) => reconnectDelay(attempt, maxDelay),
    lazyConnect: false,
    enableReadyCheck: true,
    connectionName: options.connectionName ?? 'ai-gateway'
  }
}

export function createRedisClient (options: RedisClientOptions): Redis {
  const { logger } = options
  const target = redactRedisUrl(options.url)
  const secrets = passwordForms(options.url)
  const scrub = (message: string): string => secrets.reduce((text, secret) => text.split(secret).join('***'), message)
  const client = new Redis(String(options.url), hotPathOptions(options))

  logConnectionEvents(client, target, scrub, logger)
  return client
}

/**
 * Logs a client's connection life. Without an 'error' listener an
 * unreachable Redis would crash the process. One warning per outage ("lost"
 * after having been ready, or the first connection error); ioredis repeats
 * the error on every reconnection attempt, and those repeats are debug lines.
 */
function logConnectionEvents (client: Redis, target: string, scrub: (message: string) => string, logger: Logger): void {
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
}

export interface RedisSentinelClientOptions extends Omit<RedisClientOptions, 'url'> {
  /** REDIS_SENTINELS: the sentinels, and the master's credentials and transport. */
  sentinels: RedisClusterTarget
  /** REDIS_SENTINEL_MASTER. */
  masterName: string
  /** REDIS_SENTINEL_PASSWORD. @default undefined */
  sentinelPassword?: string | undefined
}

/**
 * A client of the master that Redis Sentinel names, with the hot-path
 * contract of createRedisClient. ioredis asks the sentinels for the master,
 * checks that the server it reaches is a master, and on a failover
 * (`+switch-master`, or the old master gone) reconnects to the new one; while
 * it does, commands fail at once and the failure modes answer, as for a
 * restart. Sentinels are tried in turn, forever, with the same capped backoff.
 */
export function createRedisSentinelClient (options: RedisSentinelClientOptions): Redis {
  const { logger, sentinels } = options
  const target = describeSentinelTarget(sentinels, options.masterName)
  const secrets = [sentinels.password, options.sentinelPassword].filter((secret): secret is string => secret !== undefined).flatMap((secret) => [secret, encodeURIComponent(secret)])
  const scrub = (message: string): string => secrets.reduce((text, secret) => text.split(secret).join('***'), message)
  const client = new Redis({
    sentinels: sentinels.nodes.map(({ host, port }) => ({ host, port })),
    name: options.masterName,
    role: 'master',
    ...(options.sentinelPassword === undefined ? {} : { sentinelPassword: options.sentinelPassword }),
    ...(sentinels.username === undefined ? {} : { username: sentinels.username }),
    ...(sentinels.password === undefined ? {} : { password: sentinels.password }),
    ...(sentinels.tls ? { tls: {} } : {}),
    // Listens for +switch-master on the sentinels: the new master is used as soon as it is elected.
    failoverDetector: true,
    sentinelRetryStrategy: (attempt) => reconnectDelay(attempt, options.maxReconnectDelayMs ?? 2000),
    ...hotPathOptions(options)
  })
  logConnectionEvents(client, target, scrub, logger)
  return client
}

/** `sentinel master <name> via host:port,…` without credentials, fit for a log line. */
export function describeSentinelTarget (sentinels: RedisClusterTarget, masterName: string): string {
  return `sentinel master ${masterName} via ${sentinels.nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(',')}`
}

/** The nodes of REDIS_CLUSTER_NODES, and the credentials and transport they share. */
export interface RedisClusterTarget {
  /** Seed nodes; the client learns the others (and who owns which slot) from them. */
  readonly nodes: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly username?: string | undefined
  readonly password?: string | undefined
  /** True for `rediss://` nodes. */
  readonly tls: boolean
}

/**
 * Parses a comma-separated list of Redis nodes: `host:port` (the default port
 * when omitted, `[::1]:7000` for IPv6) or `redis://[user:password@]host:port`
 * / `rediss://…` items. Credentials and scheme are those of the URL items,
 * which must agree; plain items share them. Problems name the item by its
 * position, never its text (it may hold a password).
 */
export function redisNodes (raw: string, defaultPort: number): RedisClusterTarget {
  const items = raw.split(',').map((item) => item.trim()).filter((item) => item !== '')
  if (items.length === 0) throw new Error('expected at least one host:port')
  const nodes: Array<{ host: string; port: number }> = []
  let credentials: { username: string; password: string; tls: boolean } | undefined
  items.forEach((item, index) => {
    const where = `node ${index + 1}`
    const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(item)
    let parsed: URL
    try {
      parsed = new URL(isUrl ? item : `redis://${item}`)
    } catch {
      throw new Error(`${where}: expected host:port or redis://[user:password@]host:port`)
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new Error(`${where}: expected a redis:// or rediss:// URL`)
    if (parsed.hostname === '') throw new Error(`${where}: no host`)
    if (!['', '/', '/0'].includes(parsed.pathname) || parsed.search !== '' || parsed.hash !== '') {
      throw new Error(`${where}: database 0 only, and no options in the URL`)
    }
    if (isUrl) {
      const these = { username: decode(parsed.username), password: decode(parsed.password), tls: parsed.protocol === 'rediss:' }
      if (credentials !== undefined && (credentials.username !== these.username || credentials.password !== these.password || credentials.tls !== these.tls)) {
        throw new Error(`${where}: every node URL must carry the same credentials and scheme`)
      }
      credentials = these
    }
    nodes.push({ host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: parsed.port === '' ? defaultPort : Number(parsed.port) })
  })
  return Object.freeze({
    nodes: Object.freeze(nodes.map((node) => Object.freeze(node))),
    username: credentials?.username === '' ? undefined : credentials?.username,
    password: credentials?.password === '' ? undefined : credentials?.password,
    tls: credentials?.tls ?? false
  })
}

/** REDIS_CLUSTER_NODES: Redis nodes, port 6379 when omitted. */
export function clusterNodes (raw: string): RedisClusterTarget {
  return redisNodes(raw, 6379)
}

/** REDIS_SENTINELS: Sentinel nodes, port 26379 when omitted; URL credentials are the master's. */
export function sentinelNodes (raw: string): RedisClusterTarget {
  return redisNodes(raw, 26379)
}

function decode (text: string): string {
  try { return decodeURIComponent(text) } catch { return text }
}

/** `host:port,…` without credentials, fit for a log line. */
export function describeClusterTarget (target: RedisClusterTarget): string {
  return `${target.tls ? 'rediss' : 'redis'} cluster ${target.nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(',')}`
}

export interface RedisClusterClientOptions extends Omit<RedisClientOptions, 'url'> {
  target: RedisClusterTarget
}

/**
 * A Redis Cluster client with the same hot-path contract as createRedisClient:
 * no offline queue (a command whose node is not connected fails at once), the
 * command timeout on every node, no retries and no replays. ioredis's own
 * cluster retries are turned off where they would replay a command that may
 * have run (`retryDelayOnFailover`, `retryDelayOnClusterDown`: a rate-limit
 * script must never count twice); a MOVED redirection is still followed (the
 * command did not run on the node that answered it). Node losses are logged
 * as one warning per node and minute; the rest are debug lines.
 */
export function createRedisClusterClient (options: RedisClusterClientOptions): Cluster {
  const { logger, target } = options
  const described = describeClusterTarget(target)
  const secrets = target.password === undefined ? [] : [target.password, encodeURIComponent(target.password)]
  const scrub = (message: string): string => secrets.reduce((text, secret) => text.split(secret).join('***'), message)
  const maxDelay = options.maxReconnectDelayMs ?? 2000
  const connectTimeout = options.connectTimeoutMs ?? 1000

  const client = new Cluster(target.nodes.map(({ host, port }) => ({ host, port })), {
    enableOfflineQueue: false,
    enableReadyCheck: true,
    scaleReads: 'master',
    maxRedirections: 6,
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    slotsRefreshTimeout: connectTimeout,
    // Picks up a promoted replica even when no command meets a MOVED.
    slotsRefreshInterval: 5000,
    clusterRetryStrategy: (attempt) => reconnectDelay(attempt, maxDelay),
    redisOptions: {
      commandTimeout: options.commandTimeoutMs ?? 100,
      connectTimeout,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectionName: options.connectionName ?? 'ai-gateway',
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: {} } : {})
    }
  })

  let everReady = false
  let warned = false
  client.on('reconnecting', () => {
    if (everReady && !warned) {
      warned = true
      logger.warn({ redis: described }, 'redis connection lost')
    }
  })
  client.on('error', (error: Error) => {
    const fields = { redis: described, error: scrub(error.message) }
    if (warned) {
      logger.debug(fields, 'redis connection error')
    } else {
      warned = true
      logger.warn(fields, 'redis connection error')
    }
  })
  // One node down while the others serve: the cluster stays `ready`.
  const nodeWarnedAt = new Map<string, number>()
  client.on('node error', (error: Error, address: string) => {
    const fields = { redis: described, node: String(address), error: scrub(error.message) }
    const last = nodeWarnedAt.get(String(address))
    if (last === undefined || Date.now() - last > 60_000) {
      nodeWarnedAt.set(String(address), Date.now())
      logger.warn(fields, 'redis cluster node error')
    } else {
      logger.debug(fields, 'redis cluster node error')
    }
  })
  client.on('ready', () => {
    logger.info({ redis: described }, everReady ? 'redis connection restored' : 'redis connected')
    everReady = true
    warned = false
  })
  return client
}

/** True when commands can be sent now (connected and past the ready check). */
export function isRedisReady (client: RedisClient): boolean {
  return client.status === 'ready'
}

/**
 * The key slot of `key` in a Redis Cluster: CRC16 (XMODEM) of its hash tag
 * (the text between the first `{` and the next `}`, when not empty) or of the
 * whole key, modulo 16384.
 */
export function clusterKeySlot (key: string): number {
  const open = key.indexOf('{')
  let hashed = key
  if (open !== -1) {
    const close = key.indexOf('}', open + 1)
    if (close > open + 1) hashed = key.slice(open + 1, close)
  }
  let crc = 0
  for (const byte of Buffer.from(hashed, 'utf8')) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) crc = (crc & 0x8000) !== 0 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16384
}

/** For each of the 16384 slots, a small number n such that `{n}` hashes to it; built once, when first needed. */
let tagsBySlot: Int32Array | undefined
function tagForSlot (slot: number): number {
  if (tagsBySlot === undefined) {
    const table = new Int32Array(16384).fill(-1)
    let missing = 16384
    for (let n = 0; missing > 0; n++) {
      const hashed = clusterKeySlot(`{${n}}`)
      if (table[hashed] === -1) { table[hashed] = n; missing-- }
    }
    tagsBySlot = table
  }
  return tagsBySlot[slot]!
}

/**
 * Keys that reach every server: `[base]` for one Redis; for a Cluster, one
 * `<base>:{<n>}` per master in the client's slot map, each in a slot that
 * master serves. Probing each of them proves every shard answers, not just
 * whichever node a keyless command lands on. Empty when the client knows no
 * slots yet.
 */
export function keysOnEveryShard (client: RedisClient, base: string): string[] {
  if (!(client instanceof Cluster)) return [base]
  const firstSlotOf = new Map<string, number>()
  client.slots.forEach((nodes, slot) => {
    const master = nodes?.[0]
    if (master !== undefined && !firstSlotOf.has(master)) firstSlotOf.set(master, slot)
  })
  return [...firstSlotOf.values()].map((slot) => `${base}:{${tagForSlot(slot)}}`)
}

/**
 * Resolves when the server (one Redis: PING) or every shard (a Cluster:
 * EXISTS on a key each master serves) answers; rejects otherwise.
 */
export async function pingEveryShard (client: RedisClient): Promise<void> {
  if (!(client instanceof Cluster)) {
    const reply = await client.ping()
    if (reply !== 'PONG') throw new Error(`unexpected PING reply ${JSON.stringify(reply)}`)
    return
  }
  const keys = keysOnEveryShard(client, 'ai_gateway:ping')
  if (keys.length === 0) throw new Error('no slot map yet')
  await Promise.all(keys.map(async (key) => await client.exists(key)))
}

/**
 * PING (every shard of a Cluster) within `timeoutMs`; false on any failure.
 * Never waits longer than `timeoutMs`, whatever the client's own settings.
 */
export async function pingRedis (client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (!isRedisReady(client)) return false
  try {
    await withDeadline(pingEveryShard(client), timeoutMs)
    return true
  } catch {
    return false
  }
}

/** QUIT within `timeoutMs`, then drops the connection and stops reconnecting, whatever happened. */
export async function closeRedisClient (client: RedisClient, timeoutMs = 1000): Promise<void> {
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
