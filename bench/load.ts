/**
 * The load generator: autocannon in its own process, which the orchestrator
 * pins to the load CPU (taskset), away from the servers.
 *
 *   node dist/bench/load.js '<LoadSpec as JSON>'
 *
 * Protocol on stdout, one line each:
 *   WARM                   the warm-up is over; waits for SIGUSR2 before measuring
 *                          (the orchestrator samples the servers' CPU counters in between)
 *   PROGRESS <n>           with `amount`: n responses so far (every `progressEvery`)
 *   RESULT <LoadResult>    the measurement, as JSON
 *
 * Latencies are recorded here in microseconds from autocannon's `response`
 * events: autocannon's own histogram keeps whole milliseconds, too coarse for
 * a sub-millisecond budget. With one connection (the latency runs), a plain
 * node:http loop sends the requests and times them instead (measureSequential).
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import autocannon, { type AutocannonOptions, type AutocannonRequest } from 'autocannon'

export interface LoadSpec {
  url: string
  method?: 'GET' | 'POST'
  body?: string
  headers?: Record<string, string>
  /** A JSON file holding an array of bearer tokens, used in turn (one per request, shared by all connections). */
  tokensFile?: string
  connections: number
  /** Measured duration, in seconds (or use `amount`). */
  seconds?: number
  /** Measured number of requests, instead of a duration. */
  amount?: number
  /** With `amount`: print PROGRESS every this many responses. */
  progressEvery?: number
  /** Warm-up before the measurement, in seconds (0: none, and no WARM handshake). */
  warmupSeconds?: number
}

export interface LatencySummary {
  p50: number
  p90: number
  p99: number
  max: number
  mean: number
}

export interface LoadResult {
  /** Responses received during the measurement (any status). */
  responses: number
  /** Responses per second of the measured period. */
  rps: number
  seconds: number
  /** Milliseconds, with microsecond resolution; 2xx answers only. */
  latencyMs: LatencySummary
  status: Record<string, number>
  errors: number
  timeouts: number
  /** CPU used by this load process during the measurement, as a share of one core (100 = one core busy). */
  loadCpuPercent: number
}

/** Grows as needed; one float per response. */
class Samples {
  #data = new Float64Array(1 << 16)
  #length = 0

  push (value: number): void {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2)
      bigger.set(this.#data)
      this.#data = bigger
    }
    this.#data[this.#length++] = value
  }

  summary (): LatencySummary {
    const sorted = this.#data.slice(0, this.#length).sort()
    const at = (q: number): number => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
    let sum = 0
    for (const value of sorted) sum += value
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!, mean: sorted.length === 0 ? 0 : sum / sorted.length }
  }
}

function options (spec: LoadSpec, tokens: string[] | undefined): AutocannonOptions {
  const headers: Record<string, string> = { ...spec.headers }
  if (spec.body !== undefined) headers['content-type'] ??= 'application/json'
  const base: AutocannonOptions = {
    url: spec.url,
    connections: spec.connections,
    timeout: 30,
    method: spec.method ?? 'GET',
    headers,
    ...(spec.body === undefined ? {} : { body: spec.body })
  }
  if (tokens === undefined || tokens.length === 0) return base
  let next = 0
  const request: AutocannonRequest = {
    method: base.method ?? 'GET',
    headers,
    ...(spec.body === undefined ? {} : { body: spec.body }),
    setupRequest: (req) => {
      req.headers = { ...headers, authorization: `Bearer ${tokens[next++ % tokens.length]!}` }
      return req
    }
  }
  return { ...base, requests: [request] }
}


/**
 * One connection, one request after another, each timed from its write to
 * the end of its answer. autocannon's per-response times are wrong with one
 * connection behind nginx (a p50 of 1.5 ms while its own request rate put the
 * mean at 0.15 ms; this loop measured 0.16 ms), so latency runs use this.
 */
async function measureSequential (spec: LoadSpec, tokens: string[] | undefined, seconds: number | undefined, amount: number | undefined, record: boolean): Promise<LoadResult> {
  const samples = new Samples()
  const status: Record<string, number> = {}
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  const body = spec.body === undefined ? undefined : Buffer.from(spec.body)
  const headers: Record<string, string | number> = { ...spec.headers }
  if (body !== undefined) {
    headers['content-type'] ??= 'application/json'
    headers['content-length'] = body.length
  }
  let responses = 0
  let errors = 0
  let timeouts = 0
  let next = 0
  const cpuBefore = process.cpuUsage()
  const started = process.hrtime.bigint()
  const deadline = started + BigInt(Math.round((seconds ?? 1) * 1e9))
  const more = (): boolean => amount === undefined ? process.hrtime.bigint() < deadline : responses + errors < amount
  while (more()) {
    const sentAt = process.hrtime.bigint()
    const outcome = await new Promise<number | 'error' | 'timeout'>((resolve) => {
      const req = request(spec.url, {
        method: spec.method ?? 'GET',
        agent,
        headers: tokens === undefined || tokens.length === 0 ? headers : { ...headers, authorization: `Bearer ${tokens[next++ % tokens.length]!}` }
      }, (res) => {
        res.resume()
        res.on('end', () => { resolve(res.statusCode ?? 0) })
        res.on('error', () => { resolve('error') })
      })
      req.setTimeout(30_000, () => { req.destroy(); resolve('timeout') })
      req.on('error', () => { resolve('error') })
      req.end(body)
    })
    if (outcome === 'error') { errors++; continue }
    if (outcome === 'timeout') { timeouts++; continue }
    responses++
    if (!record) continue
    status[outcome] = (status[outcome] ?? 0) + 1
    if (outcome >= 200 && outcome < 300) samples.push(Number(process.hrtime.bigint() - sentAt) / 1e6)
    if (spec.progressEvery !== undefined && responses % spec.progressEvery === 0) process.stdout.write(`PROGRESS ${responses}\n`)
  }
  agent.destroy()
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  const cpu = process.cpuUsage(cpuBefore)
  return {
    responses,
    rps: responses / elapsed,
    seconds: elapsed,
    latencyMs: samples.summary(),
    status,
    errors,
    timeouts,
    loadCpuPercent: ((cpu.user + cpu.system) / 1e6) / elapsed * 100
  }
}

async function measure (spec: LoadSpec, tokens: string[] | undefined, seconds: number | undefined, amount: number | undefined, record: boolean): Promise<LoadResult> {
  if (spec.connections === 1) return await measureSequential(spec, tokens, seconds, amount, record)
  const samples = new Samples()
  const status: Record<string, number> = {}
  let responses = 0
  let errors = 0
  const cpuBefore = process.cpuUsage()
  const started = process.hrtime.bigint()
  const instance = autocannon({
    ...options(spec, tokens),
    ...(amount === undefined ? { duration: seconds ?? 1 } : { amount })
  })
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    responses++
    if (!record) return
    status[statusCode] = (status[statusCode] ?? 0) + 1
    if (statusCode >= 200 && statusCode < 300) samples.push(responseTimeMs)
    if (spec.progressEvery !== undefined && responses % spec.progressEvery === 0) process.stdout.write(`PROGRESS ${responses}\n`)
  })
  instance.on('reqError', () => { errors++ })
  const result = await instance
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9
  const cpu = process.cpuUsage(cpuBefore)
  return {
    responses,
    rps: responses / elapsed,
    seconds: elapsed,
    latencyMs: samples.summary(),
    status,
    errors: Math.max(errors, result.errors - result.timeouts),
    timeouts: result.timeouts,
    loadCpuPercent: ((cpu.user + cpu.system) / 1e6) / elapsed * 100
  }
}

async function main (): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec
  const tokens = spec.tokensFile === undefined ? undefined : JSON.parse(readFileSync(spec.tokensFile, 'utf8')) as string[]
  if ((spec.warmupSeconds ?? 0) > 0) {
    await measure(spec, tokens, spec.warmupSeconds, undefined, false)
    // A signal listener does not keep node running: the timer does, until the signal comes.
    const alive = setInterval(() => {}, 60_000)
    const go = new Promise<void>((resolve) => process.once('SIGUSR2', () => { resolve() }))
    process.stdout.write('WARM\n')
    await go
    clearInterval(alive)
  }
  const result = await measure(spec, tokens, spec.seconds, spec.amount, true)
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
}

main().then(() => { process.exit(0) }, (error: unknown) => {
  process.stderr.write(`load: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
