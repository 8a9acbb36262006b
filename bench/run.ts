/**
 * The benchmark (issue 8): starts its own processes on loopback — a stub
 * upstream, a bare http-proxy-3 pass-through, redis-server, three gateways
 * with production settings and two nginx — measures every configuration in
 * alternating rounds with the load generator pinned to its own CPU, and
 * writes docs/benchmarks.md, docs/benchmarks.png and docs/benchmarks.json.
 *
 *   npm run build && npm run bench
 *
 * Environment (defaults are the issue's):
 *   BENCH_SECONDS=10        measured seconds per configuration and round
 *   BENCH_ROUNDS=2          rounds; odd rounds run the configurations in reverse order
 *   BENCH_WARMUP_SECONDS    warm-up before each measurement (3, or 0.5 when BENCH_SECONDS < 5)
 *   BENCH_CONNECTIONS=32    connections of the throughput runs
 *   BENCH_USERS=10000       distinct users (tokens) the requests rotate through
 *   BENCH_SSE_STREAMS       streams per SSE path and round (10 × BENCH_SECONDS)
 *   BENCH_ONLY=1,3,L1,S3    run only these ids (development)
 *   BENCH_OUT_DIR=docs      where benchmarks.{md,png,json} go
 *   BENCH_NOTE="…"          a line added to the report (e.g. why a run is preliminary)
 *   BENCH_GATEWAY_NODE_ARGS node flags for the gateways (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof)
 *   BENCH_KEEP_TMP=1        keep the logs and configs of the run
 */
import { readFileSync, statSync } from 'node:fs'
import { loadavg } from 'node:os'
import { sleep } from '../common/testkit/ports.js'
import { hasCommand, Cleanup, cpuPlan, memoryOf, pinSelf, runMain } from './procs.js'
import { measureLoad, measureSse, type LoadRun, type Subject } from './measure.js'
import { startNginx, type RunningNginx } from './nginx.js'
import { CHAT_BODY, CHAT_PATH, GENERATE_BODY, GENERATE_PATH, probe, ready, Stack, type Service } from './stack.js'
import { describeMachine, writeReport, printSummary, type BenchResults, type Measured } from './report.js'
import type { SseResult } from './sse-client.js'

function envNumber (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: expected a positive number`)
  return value
}

const SECONDS = envNumber('BENCH_SECONDS', 10)
const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', 2))
const WARMUP = envNumber('BENCH_WARMUP_SECONDS', SECONDS >= 5 ? 3 : 0.5)
const CONNECTIONS = Math.round(envNumber('BENCH_CONNECTIONS', 32))
const USERS = Math.round(envNumber('BENCH_USERS', 10_000))
const SSE_STREAMS = Math.round(envNumber('BENCH_SSE_STREAMS', Math.max(10, SECONDS * 10)))
const ONLY = process.env.BENCH_ONLY?.split(',').map((id) => id.trim()).filter((id) => id !== '')
/** The gateway's default AI_ENGINE_REDIS_TIMEOUT_MS: no request should wait on Redis longer. */
const REDIS_TIMEOUT_MS = 100

const log = (line: string): void => { process.stderr.write(`${line}\n`) }

interface Measurement {
  id: string
  kind: 'throughput' | 'latency' | 'sse'
  label: string
  run: () => Promise<LoadRun | SseResult>
}

async function main (cleanup: Cleanup): Promise<void> {
  const plan = cpuPlan()
  pinSelf(plan, plan.load)
  const loadAtStart = loadavg()
  log(`bench: ${plan.description}; ${SECONDS} s per configuration, ${ROUNDS} round(s), warm-up ${WARMUP} s, ${CONNECTIONS} connections, ${USERS} users`)
  const notes: string[] = []
  if (process.env.BENCH_NOTE !== undefined) notes.push(process.env.BENCH_NOTE)

  const stack = new Stack(cleanup, plan)
  const stub = await stack.stub()
  const bare = await stack.bareProxy(stub.url)
  const redis = await stack.redis()
  const gateway = await stack.gateway('gateway', { upstream: stub.url, redisUrl: redis.url, cache: false })
  const cached = await stack.gateway('gateway-cache', { upstream: stub.url, redisUrl: redis.url, cache: true })
  const doomedRedis = await stack.redis()
  const orphan = await stack.gateway('gateway-redis-down', { upstream: stub.url, redisUrl: doomedRedis.url, cache: false })
  let nginxStub: RunningNginx | undefined
  let nginxGateway: RunningNginx | undefined
  if (hasCommand('nginx')) {
    nginxStub = await startNginx(cleanup, plan, stack.dir, 'nginx-stub', `127.0.0.1:${stub.port}`)
    nginxGateway = await startNginx(cleanup, plan, stack.dir, 'nginx-gateway', `127.0.0.1:${gateway.port}`)
  } else {
    notes.push('nginx is not installed: the nginx configurations were skipped (`make bench` installs it).')
  }
  log(`bench: signing ${USERS} tokens`)
  const tokens = await stack.tokens(USERS)
  const auth = { authorization: `Bearer ${tokens.first}` }

  // What the gateway does today: is the Redis limiter on the request path? Is the cache?
  for (const service of [bare, gateway, cached, orphan]) await ready(service.url, GENERATE_PATH, GENERATE_BODY, auth)
  // A user no request has used yet: a Redis limiter creates a key for it.
  const keysBefore = Number((await redis.command('DBSIZE')).slice(1))
  const limited = await probe(gateway.url, GENERATE_PATH, GENERATE_BODY, { authorization: `Bearer ${await stack.token('bench-probe')}` })
  const keysAfter = Number((await redis.command('DBSIZE')).slice(1))
  const limiterWired = limited.headers['x-ratelimit-limit'] !== undefined
  const limiterOnRedis = limiterWired && keysAfter > keysBefore
  const answerBytes = (await probe(stub.url, GENERATE_PATH, GENERATE_BODY, auth)).bytes
  await probe(cached.url, GENERATE_PATH, GENERATE_BODY, auth)
  const hit = await probe(cached.url, GENERATE_PATH, GENERATE_BODY, auth)
  const cacheWired = hit.headers['x-cache'] === 'HIT'
  if (!limiterWired) notes.push('The gateway sent no rate-limit headers: the rate limiter was not on the request path in this build, so (3), (5) and (6) measure the gateway without it.')
  else if (!limiterOnRedis) notes.push('The rate limiter answered but wrote nothing to Redis: it ran in memory in this build.')
  if (!cacheWired) notes.push('The cache did not answer HIT: it was not wired in this build, so (4) measures a cache-off gateway.')

  const servers = (...services: Array<Service | RunningNginx | undefined>): () => number[] =>
    () => services.flatMap((service) => service === undefined ? [] : service.pids())
  const redisPid = (): number[] => redis.process.child.pid === undefined ? [] : [redis.process.child.pid]
  const on = (service: Service & { process: { logFile: string } }): Subject['gateway'] => ({ pid: service.pid, logFile: service.process.logFile })

  // Paths through a gateway rotate the users (the limiter sees them all). Elsewhere nothing reads the
  // token, so one fixed token of the same size keeps the bytes on the wire the same while autocannon
  // sends a prebuilt request: rebuilding each one costs the client CPU it needs for the fastest paths.
  const load = (url: string, subject: Subject, connections: number) => async (): Promise<LoadRun> => await measureLoad(cleanup, plan, {
    url: `${url}${GENERATE_PATH}`,
    method: 'POST',
    body: GENERATE_BODY,
    ...(subject.gateway === undefined ? { headers: auth } : { tokensFile: tokens.file }),
    connections,
    seconds: SECONDS,
    warmupSeconds: WARMUP
  }, subject)

  let redisKilled = false
  const killRedisOnce = async (): Promise<void> => {
    if (redisKilled) return
    redisKilled = true
    const logBefore = statSync(orphan.process.logFile).size
    await doomedRedis.stop()
    // The first requests after the loss switch the limiter (and cache) to memory, with a warning.
    for (let i = 0; i < 5; i++) await probe(orphan.url, GENERATE_PATH, GENERATE_BODY, auth).catch(() => undefined)
    await sleep(300)
    const warnings = readFileSync(orphan.process.logFile).subarray(logBefore).toString('utf8').split('\n').filter((line) => /"level":"(warn|error)"/.test(line))
    if (warnings.length === 0) notes.push('(6): the gateway logged no warning after its Redis was stopped (expected: the switch to the memory fallback).')
    else log(`bench: (6) after Redis was stopped: ${warnings.map((line) => (JSON.parse(line) as { msg?: string }).msg).join(' | ')}`)
  }

  const all: Measurement[] = [
    { id: '1', kind: 'throughput', label: 'direct → stub', run: load(stub.url, { servers: servers(stub) }, CONNECTIONS) },
    ...(nginxStub === undefined
      ? []
      : [{ id: '2', kind: 'throughput' as const, label: 'nginx → stub', run: load(nginxStub.url, { servers: servers(nginxStub, stub), front: servers(nginxStub) }, CONNECTIONS) }]),
    { id: '2b', kind: 'throughput', label: 'bare http-proxy-3 → stub', run: load(bare.url, { servers: servers(bare, stub), front: servers(bare) }, CONNECTIONS) },
    { id: '3', kind: 'throughput', label: 'gateway → stub (cache off)', run: load(gateway.url, { servers: () => [...servers(gateway, stub)(), ...redisPid()], front: servers(gateway), gateway: on(gateway) }, CONNECTIONS) },
    { id: '4', kind: 'throughput', label: 'gateway, cache hits', run: load(cached.url, { servers: () => [...servers(cached, stub)(), ...redisPid()], front: servers(cached), gateway: on(cached) }, CONNECTIONS) },
    ...(nginxGateway === undefined
      ? []
      : [{ id: '5', kind: 'throughput' as const, label: 'nginx → gateway → stub', run: load(nginxGateway.url, { servers: () => [...servers(nginxGateway, gateway, stub)(), ...redisPid()], front: servers(nginxGateway, gateway), gateway: on(gateway) }, CONNECTIONS) }]),
    {
      id: '6',
      kind: 'throughput',
      label: 'gateway, Redis down',
      run: async () => { await killRedisOnce(); return await load(orphan.url, { servers: servers(orphan, stub), front: servers(orphan), gateway: on(orphan) }, CONNECTIONS)() }
    },
    { id: 'L1', kind: 'latency', label: 'direct → stub', run: load(stub.url, { servers: servers(stub) }, 1) },
    { id: 'L2b', kind: 'latency', label: 'bare http-proxy-3 → stub', run: load(bare.url, { servers: servers(bare, stub), front: servers(bare) }, 1) },
    { id: 'L3', kind: 'latency', label: 'gateway → stub', run: load(gateway.url, { servers: () => [...servers(gateway, stub)(), ...redisPid()], gateway: on(gateway) }, 1) },
    {
      id: 'L6',
      kind: 'latency',
      label: 'gateway, Redis down',
      run: async () => { await killRedisOnce(); return await load(orphan.url, { servers: servers(orphan, stub), gateway: on(orphan) }, 1)() }
    },
    ...(nginxStub === undefined
      ? []
      : [{ id: 'L2', kind: 'latency' as const, label: 'nginx → stub', run: load(nginxStub.url, { servers: servers(nginxStub, stub) }, 1) }]),
    ...(nginxGateway === undefined
      ? []
      : [{ id: 'L5', kind: 'latency' as const, label: 'nginx → gateway → stub', run: load(nginxGateway.url, { servers: () => [...servers(nginxGateway, gateway, stub)(), ...redisPid()], gateway: on(gateway) }, 1) }]),
    ...[['S1', 'direct → stub', stub.url], ['S2b', 'bare http-proxy-3 → stub', bare.url], ['S3', 'gateway → stub', gateway.url], ['S5', 'nginx → gateway → stub', nginxGateway?.url]]
      .filter((entry): entry is [string, string, string] => entry[2] !== undefined)
      .map(([id, label, url]): Measurement => ({
        id,
        kind: 'sse',
        label,
        run: async () => await measureSse(cleanup, plan, { url, path: CHAT_PATH, body: CHAT_BODY, headers: auth, streams: SSE_STREAMS })
      }))
  ]
  const measurements = all.filter((measurement) => ONLY === undefined || ONLY.includes(measurement.id))

  const results = new Map<string, Measured>()
  for (const measurement of measurements) results.set(measurement.id, { id: measurement.id, kind: measurement.kind, label: measurement.label, runs: [] })
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? measurements : [...measurements].reverse()
    for (const measurement of order) {
      const outcome = await measurement.run()
      nginxStub?.truncateLogs()
      nginxGateway?.truncateLogs()
      results.get(measurement.id)!.runs.push(outcome as never)
      log(`[round ${round + 1}/${ROUNDS}] (${measurement.id}) ${measurement.label}: ${oneLine(outcome)}`)
    }
  }

  const saturated = [...results.values()].filter((m) => m.kind !== 'sse' && (m.runs as LoadRun[]).some((run) => run.loadCpuPercent >= 90)).map((m) => `(${m.id})`)
  if (saturated.length > 0) notes.push(`The load generator used ≥ 90 % of its CPU in ${saturated.join(', ')}: there the client was (close to) the limit, so those throughputs are floors and ratios against them are understated.`)
  const redisKeys = Number((await redis.command('DBSIZE')).slice(1))
  const gatewayPeakRss = Math.max(...[gateway, cached, orphan].map((service) => memoryOf(service.pid).peak))

  const report: BenchResults = {
    machine: describeMachine(loadAtStart),
    settings: {
      seconds: SECONDS,
      rounds: ROUNDS,
      warmupSeconds: WARMUP,
      connections: CONNECTIONS,
      users: USERS,
      sseStreams: SSE_STREAMS,
      pinning: plan.description,
      nginxSource: nginxStub?.source ?? 'not run',
      limiterWired,
      limiterOnRedis,
      cacheWired,
      redisTimeoutMs: REDIS_TIMEOUT_MS,
      answerBytes,
      requestBytes: Buffer.byteLength(GENERATE_BODY),
      redisKeysAfter: redisKeys,
      gatewayPeakRssBytes: gatewayPeakRss,
      only: ONLY
    },
    measured: [...results.values()],
    notes
  }
  await writeReport(report)
  printSummary(report)
}

function oneLine (outcome: LoadRun | SseResult): string {
  if ('rps' in outcome) {
    const cpu = outcome.gatewayCpuUsPerRequest === undefined ? '' : `, gateway ${outcome.gatewayCpuUsPerRequest.toFixed(0)} µs/req`
    const bad = Object.entries(outcome.status).filter(([code]) => !code.startsWith('2'))
    return `${Math.round(outcome.rps)} req/s, p50 ${outcome.latencyMs.p50.toFixed(2)} ms, p99 ${outcome.latencyMs.p99.toFixed(2)} ms${cpu}, load CPU ${outcome.loadCpuPercent.toFixed(0)} %` +
      (bad.length > 0 ? `, NON-2XX ${JSON.stringify(Object.fromEntries(bad))}` : '') + (outcome.errors > 0 ? `, ${outcome.errors} errors` : '')
  }
  return `first event p50 ${outcome.firstEventMs.p50.toFixed(2)} ms, total p50 ${outcome.totalMs.p50.toFixed(1)} ms, events ${outcome.eventsMin}–${outcome.eventsMax}, reads/stream ≥ ${outcome.readsWithEventsMin}, failures ${outcome.failures}`
}

const cleanup = new Cleanup()
runMain(cleanup, async () => { await main(cleanup) })
