/**
 * The soak (make bench-soak): the gateway with production settings (Redis
 * limiter, cache off, completion log at info) under 32 connections of
 * 10 000 rotating users until it has answered BENCH_SOAK_REQUESTS requests
 * (1 000 000). Its RSS is read every 500 ms and at every tenth of the run; the
 * growth is the median of the last tenth of the readings over the first tenth's. Adds a section to
 * docs/benchmarks.json and docs/benchmarks.md.
 *
 *   npm run build && npm run bench:soak
 */
import { loadavg } from 'node:os'
import { truncateSync } from 'node:fs'
import { Cleanup, cpuPlan, cpuSeconds, memoryOf, pinSelf, runMain } from './procs.js'
import { measureLoad } from './measure.js'
import { GENERATE_BODY, GENERATE_PATH, probe, ready, Stack } from './stack.js'
import { describeMachine, writeSoak } from './report.js'

function envNumber (name: string, fallback: number): number {
  const raw = process.env[name]
  const value = raw === undefined || raw.trim() === '' ? fallback : Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: expected a positive number`)
  return Math.round(value)
}

const REQUESTS = envNumber('BENCH_SOAK_REQUESTS', 1_000_000)
const WARMUP_REQUESTS = envNumber('BENCH_SOAK_WARMUP_REQUESTS', Math.min(50_000, Math.ceil(REQUESTS / 10)))
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 32)
const USERS = envNumber('BENCH_USERS', 10_000)

const log = (line: string): void => { process.stderr.write(`${line}\n`) }

async function main (cleanup: Cleanup): Promise<void> {
  const plan = cpuPlan()
  pinSelf(plan, plan.load)
  const loadAtStart = loadavg()
  log(`bench-soak: ${plan.description}; ${REQUESTS} requests after ${WARMUP_REQUESTS}, ${CONNECTIONS} connections, ${USERS} users`)
  const stack = new Stack(cleanup, plan)
  const stub = await stack.stub()
  const redis = await stack.redis()
  const gateway = await stack.gateway('gateway', { upstream: stub.url, redisUrl: redis.url, cache: false })
  const tokens = await stack.tokens(USERS)
  const auth = { authorization: `Bearer ${tokens.first}` }
  await ready(gateway.url, GENERATE_PATH, GENERATE_BODY, auth)
  const limiterWired = (await probe(gateway.url, GENERATE_PATH, GENERATE_BODY, auth)).headers['x-ratelimit-limit'] !== undefined
  if (!limiterWired) log('bench-soak: the gateway sent no rate-limit headers (limiter not wired in this build)')

  const spec = { url: `${gateway.url}${GENERATE_PATH}`, method: 'POST' as const, body: GENERATE_BODY, tokensFile: tokens.file, connections: CONNECTIONS }
  const subject = { servers: () => [stub.pid, gateway.pid], gateway: { pid: gateway.pid, logFile: gateway.process.logFile } }
  log(`bench-soak: warm-up, ${WARMUP_REQUESTS} requests`)
  await measureLoad(cleanup, plan, { ...spec, amount: WARMUP_REQUESTS }, subject)

  const rssBefore = memoryOf(gateway.pid).rss
  const series: Array<[number, number]> = [[0, rssBefore]]
  const cpuBefore = cpuSeconds(gateway.pid)
  const tenth = Math.max(1, Math.floor(REQUESTS / 10))
  log(`bench-soak: RSS after the warm-up ${(rssBefore / 1048576).toFixed(1)} MB; running ${REQUESTS} requests`)
  // RSS every 500 ms too: a single reading lands anywhere on the GC sawtooth, so the growth compares
  // the median of the first tenth of these readings with the median of the last tenth.
  const readings: number[] = []
  const sampler = setInterval(() => { readings.push(memoryOf(gateway.pid).rss) }, 500)
  const result = await measureLoad(cleanup, plan, { ...spec, amount: REQUESTS, progressEvery: tenth }, subject, {
    onProgress: (responses) => {
      const rss = memoryOf(gateway.pid).rss
      series.push([responses, rss])
      // The completion log would reach hundreds of MB: keep the file small (it is opened for appending).
      truncateSync(gateway.process.logFile, 0)
      log(`bench-soak: ${responses} requests, RSS ${(rss / 1048576).toFixed(1)} MB`)
    }
  })
  clearInterval(sampler)
  const tenthOf = Math.max(1, Math.floor(readings.length / 10))
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0
  const rssEarly = median(readings.slice(0, tenthOf))
  const rssLate = median(readings.slice(-tenthOf))
  const cpuAfter = cpuSeconds(gateway.pid)
  const rssAfter = memoryOf(gateway.pid).rss
  if (series[series.length - 1]?.[0] !== result.responses) series.push([result.responses, rssAfter])
  const soak = {
    machine: describeMachine(loadAtStart),
    requests: result.responses,
    warmupRequests: WARMUP_REQUESTS,
    connections: CONNECTIONS,
    users: USERS,
    seconds: result.seconds,
    rps: result.rps,
    rssBeforeBytes: rssBefore,
    rssAfterBytes: rssAfter,
    rssEarlyBytes: rssEarly,
    rssLateBytes: rssLate,
    readings: readings.length,
    peakRssBytes: memoryOf(gateway.pid).peak,
    series,
    gatewayCpuUsPerRequest: (cpuAfter - cpuBefore) * 1e6 / Math.max(1, result.responses),
    status: result.status,
    errors: result.errors + result.timeouts,
    limiterWired
  }
  const growth = (rssLate / rssEarly - 1) * 100
  process.stdout.write(`soak: ${result.responses} requests in ${result.seconds.toFixed(0)} s (${Math.round(result.rps)} req/s); RSS (median of the first / last tenth of the run) ${(rssEarly / 1048576).toFixed(1)} → ${(rssLate / 1048576).toFixed(1)} MB (${growth.toFixed(1)} %, target < 10 %: ${growth < 10 ? 'MET' : 'NOT MET'}); peak ${(soak.peakRssBytes / 1048576).toFixed(1)} MB (target ≤ 150 MB: ${soak.peakRssBytes <= 150 * 1048576 ? 'MET' : 'NOT MET'})\n`)
  writeSoak(soak)
}

const cleanup = new Cleanup()
runMain(cleanup, async () => { await main(cleanup) })
