/**
 * The processes under test, all on loopback and pinned to the server CPUs:
 * the stub upstream, the bare http-proxy-3 pass-through, redis-server, the
 * gateway (production settings) and nginx. Each registers its teardown with
 * the cleanup list as soon as it is spawned.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { ROOT, spawnProcess, type RunningProcess } from '../common/testkit/process.js'
import { waitFor } from '../common/testkit/ports.js'
import { startRedis as startTestRedis, type RedisServer } from '../common/testkit/redis.js'
import { listeningPort, pinnedCommand, spawnToFile, type Cleanup, type CpuPlan, type LoggedProcess } from './procs.js'
import { parseDockerfile } from '../deploy/test/helpers/dockerfile.js'

export const GENERATE_PATH = '/v1/ai/generate'
export const CHAT_PATH = '/v1/ai/chat'
/** Cacheable: temperature absent (0), not streaming. */
export const GENERATE_BODY = JSON.stringify({ use_case: 'horoscope_daily', input: { sign: 'leo', date: '2026-11-26' }, context: { locale: 'en' } })
export const CHAT_BODY = JSON.stringify({ messages: [{ role: 'user', content: 'What does Mercury retrograde mean?' }], stream: true })

/**
 * The node options the Dockerfile's `gateway` image runs with (its `ENV NODE_OPTIONS`), as
 * arguments: the bench measures the gateway as production starts it (children get no NODE_OPTIONS).
 */
export function gatewayImageNodeOptions (): string[] {
  const stage = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).stages.find((each) => each.name === 'gateway')
  const env = stage?.instructions.find((instruction) => instruction.keyword === 'ENV' && instruction.args.startsWith('NODE_OPTIONS='))
  return (env?.args.slice('NODE_OPTIONS='.length).replace(/^"(.*)"$/, '$1') ?? '').split(' ').filter((arg) => arg !== '')
}

/** A node service from dist/, pinned, answering on a port read from its `listening` line. */
export interface Service {
  name: string
  url: string
  port: number
  pid: number
  pids: () => number[]
}

export class Stack {
  readonly cleanup: Cleanup
  readonly plan: CpuPlan
  /** Temporary folder for logs, configs and tokens; removed at cleanup unless BENCH_KEEP_TMP is set. */
  readonly dir: string
  /** The gateway's production JWT secret (random, 48 bytes). */
  readonly jwtSecret = randomBytes(48).toString('base64')

  constructor (cleanup: Cleanup, plan: CpuPlan) {
    this.cleanup = cleanup
    this.plan = plan
    this.dir = mkdtempSync(join(tmpdir(), 'ai-gateway-bench-'))
    cleanup.teardown(() => {
      if (process.env.BENCH_KEEP_TMP === undefined) rmSync(this.dir, { recursive: true, force: true })
      else process.stderr.write(`bench: logs and configs kept in ${this.dir}\n`)
    })
  }

  /** Starts `node <script>` pinned to the server CPUs with its output in a log file. */
  async node (name: string, script: string, env: Record<string, string | undefined>, nodeArgs: string[] = []): Promise<Service & { process: LoggedProcess }> {
    const [command, args] = pinnedCommand(this.plan, this.plan.servers, process.execPath, [...nodeArgs, join(ROOT, script)])
    const proc = spawnToFile(this.cleanup, command, args, { HOST: '127.0.0.1', PORT: '0', ...env }, join(this.dir, `${name}.log`))
    // A graceful stop first (runs before spawnToFile's SIGKILL): --cpu-prof writes its profile on a clean exit.
    this.cleanup.teardown(async () => { await proc.stop('SIGTERM', 5000) })
    const port = await listeningPort(proc, name)
    return { name, url: `http://127.0.0.1:${port}`, port, pid: proc.pid, pids: () => [proc.pid], process: proc }
  }

  async stub (): Promise<Service> {
    return await this.node('stub-upstream', 'dist/bench/stub-upstream.js', {})
  }

  async bareProxy (target: string): Promise<Service> {
    return await this.node('bare-proxy', 'dist/bench/bare-proxy.js', { BENCH_TARGET: target })
  }

  /** A real redis-server (common/testkit), moved onto the server CPUs. */
  async redis (): Promise<RedisServer> {
    const redis = await startTestRedis(this.cleanup)
    this.cleanup.track(redis.process.child.pid)
    if (this.plan.pinned && redis.process.child.pid !== undefined) {
      const pin = spawnProcess(this.cleanup, 'taskset', ['-a', '-p', '-c', this.plan.servers, String(redis.process.child.pid)])
      await pin.exited
    }
    return redis
  }

  /**
   * The gateway with production settings: the image's node options, ENVIRONMENT=production, a real
   * JWT secret, logs at info to a file, the Redis rate limiter with a limit
   * no run reaches (10 000 per user per minute, users rotate), cache off
   * unless `cache` is set.
   */
  async gateway (name: string, options: { upstream: string; redisUrl?: string; cache: boolean; extraEnv?: Record<string, string> }): Promise<Service & { process: LoggedProcess }> {
    const nodeArgs = [...gatewayImageNodeOptions(), ...(process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')]
    return await this.node(name, 'dist/gateway/src/main.js', {
      ENVIRONMENT: 'production',
      JWT_SECRET_KEY: this.jwtSecret,
      LOG_LEVEL: 'info',
      AI_UPSTREAM_URL: options.upstream,
      REDIS_URL: options.redisUrl,
      AI_ENGINE_RATE_LIMIT_ENABLED: 'true',
      AI_ENGINE_RATE_LIMIT_PER_MIN: '10000',
      AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS: '60',
      AI_ENGINE_RATE_LIMIT_FAILURE_MODE: 'memory',
      AI_ENGINE_CACHE_ENABLED: options.cache ? 'true' : 'false',
      ...options.extraEnv
    }, nodeArgs)
  }

  /** A token for `sub`, valid 12 hours, signed with the gateways' secret. */
  async token (sub: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000)
    return await new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(sub).setIssuedAt(now).setExpirationTime(now + 12 * 3600).sign(new TextEncoder().encode(this.jwtSecret))
  }

  /** `count` signed tokens for distinct users (`bench-user-N`), written to a file for the load process. */
  async tokens (count: number, prefix = 'bench-user'): Promise<{ file: string; first: string }> {
    const tokens: string[] = []
    for (let i = 0; i < count; i++) tokens.push(await this.token(`${prefix}-${i}`))
    const file = join(this.dir, `tokens-${prefix}-${count}.json`)
    writeFileSync(file, JSON.stringify(tokens))
    return { file, first: tokens[0]! }
  }
}

export interface Probe {
  status: number
  headers: Record<string, string | string[] | undefined>
  bytes: number
}

/** One request, to check a path answers as expected before it is measured. */
export async function probe (url: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Probe> {
  return await new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }
    }, (res) => {
      let bytes = 0
      res.on('data', (chunk: Buffer) => { bytes += chunk.length })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Waits until `path` answers 200 (a service that listens may still be connecting to Redis). */
export async function ready (url: string, path: string, body: string, headers: Record<string, string> = {}): Promise<Probe> {
  return await waitFor(async () => {
    try {
      const answer = await probe(url, path, body, headers)
      return answer.status === 200 ? answer : undefined
    } catch {
      return undefined
    }
  }, { timeoutMs: 15_000, intervalMs: 100, what: `${url}${path} to answer 200` })
}

/** Lines in a log file (the gateway's completion lines, one per request). */
export function countLines (file: string): number {
  const data = readFileSync(file)
  let lines = 0
  for (let i = data.indexOf(10); i !== -1; i = data.indexOf(10, i + 1)) lines++
  return lines
}

export type { RedisServer, RunningProcess }
