/**
 * The benchmark's output: the results as JSON (docs/benchmarks.json, the
 * source of the rest), the Markdown report (docs/benchmarks.md), a PNG chart
 * (docs/benchmarks.png, an SVG drawn here and rendered by resvg) and a
 * summary on the terminal. The soak (bench/soak.ts) adds its section to the
 * same JSON and re-renders the Markdown.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release } from 'node:os'
import { join } from 'node:path'
import { ROOT } from '../common/testkit/process.js'
import type { LoadRun } from './measure.js'
import type { SseResult } from './sse-client.js'

export interface MachineInfo {
  date: string
  commit: string
  nproc: number
  cpuModel: string
  kernel: string
  node: string
  nginx: string
  redis: string
  autocannon: string
  /** 1-minute load average when the run started (a quiet machine is near 0). */
  loadAtStart: number
  loadAtEnd: number
}

export type Measured =
  | { id: string; kind: 'throughput' | 'latency'; label: string; runs: LoadRun[] }
  | { id: string; kind: 'sse'; label: string; runs: SseResult[] }

export interface BenchSettings {
  seconds: number
  rounds: number
  warmupSeconds: number
  connections: number
  users: number
  sseStreams: number
  pinning: string
  nginxSource: string
  limiterWired: boolean
  limiterOnRedis: boolean
  cacheWired: boolean
  redisTimeoutMs: number
  /** Size of the stub's generate answer and of the request body, in bytes. */
  answerBytes: number
  requestBytes: number
  redisKeysAfter: number
  gatewayPeakRssBytes: number
  only?: string[] | undefined
}

export interface SoakResults {
  machine: MachineInfo
  requests: number
  warmupRequests: number
  connections: number
  users: number
  seconds: number
  rps: number
  /** RSS right after the warm-up and right at the end (single readings). */
  rssBeforeBytes: number
  rssAfterBytes: number
  /** Medians of the first and last tenth of the 500 ms readings: the growth is judged on these. */
  rssEarlyBytes: number
  rssLateBytes: number
  readings: number
  peakRssBytes: number
  /** RSS at each tenth of the run: [responses, bytes]. */
  series: Array<[number, number]>
  gatewayCpuUsPerRequest: number
  status: Record<string, number>
  errors: number
  limiterWired: boolean
}

export interface BenchResults {
  machine: MachineInfo
  settings: BenchSettings
  measured: Measured[]
  notes: string[]
  soak?: SoakResults | undefined
}

export const OUT_DIR = process.env.BENCH_OUT_DIR ?? join(ROOT, 'docs')
const JSON_FILE = (): string => join(OUT_DIR, 'benchmarks.json')
const MD_FILE = (): string => join(OUT_DIR, 'benchmarks.md')
const PNG_FILE = (): string => join(OUT_DIR, 'benchmarks.png')

function quiet (command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
  } catch (error) {
    // nginx -v prints to stderr.
    const stderr = (error as { stderr?: string }).stderr
    return stderr?.trim() ?? 'not found'
  }
}

function versionOf (command: string, args: string[]): string {
  try {
    const out = execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    return out.trim()
  } catch {
    return 'not found'
  }
}

export function describeMachine (loadAtStart: number[]): MachineInfo {
  let nginx = 'not found'
  try {
    // `nginx -v` writes its version to stderr and exits 0.
    nginx = execFileSync('sh', ['-c', 'nginx -v 2>&1'], { encoding: 'utf8' }).trim().replace(/^nginx version:\s*(nginx\/)?/, '')
  } catch { /* not installed */ }
  let autocannon = 'not found'
  try {
    autocannon = (JSON.parse(readFileSync(join(ROOT, 'node_modules/autocannon/package.json'), 'utf8')) as { version: string }).version
  } catch { /* not installed */ }
  const dirty = quiet('git', ['--no-optional-locks', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no']) !== ''
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    commit: `${quiet('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${dirty ? ' (with uncommitted changes)' : ''}`,
    // Online CPUs: this process is pinned to the load CPU by now, so not availableParallelism().
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    kernel: release(),
    node: process.version,
    nginx,
    redis: versionOf('redis-server', ['--version']).replace(/^Redis server v=(\S+).*$/, '$1'),
    autocannon,
    loadAtStart: loadAtStart[0] ?? 0,
    loadAtEnd: loadavg()[0] ?? 0
  }
}

// Summaries.

const median = (values: number[]): number => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export interface LoadSummary {
  id: string
  label: string
  rps: number
  rpsMin: number
  rpsMax: number
  /** (max − min) / median, in %. */
  spreadPct: number
  p50: number
  p99: number
  max: number
  gatewayCpu: number | undefined
  frontCpu: number | undefined
  serversCpu: number
  gatewayRss: number | undefined
  loadCpu: number
  non2xx: number
  errors: number
  logLinesPerRequest: number | undefined
}

export function summarizeLoad (measured: Extract<Measured, { kind: 'throughput' | 'latency' }>): LoadSummary {
  const runs = measured.runs
  const rps = runs.map((r) => r.rps)
  const med = median(rps)
  const gatewayCpu = runs.map((r) => r.gatewayCpuUsPerRequest).filter((v): v is number => v !== undefined)
  const front = runs.map((r) => r.frontCpuUsPerRequest).filter((v): v is number => v !== undefined)
  const rss = runs.map((r) => r.gatewayRssBytes).filter((v): v is number => v !== undefined)
  const lines = runs.map((r) => r.logLinesPerRequest).filter((v): v is number => v !== undefined)
  return {
    id: measured.id,
    label: measured.label,
    rps: med,
    rpsMin: Math.min(...rps),
    rpsMax: Math.max(...rps),
    spreadPct: rps.length < 2 ? NaN : (Math.max(...rps) - Math.min(...rps)) / med * 100,
    p50: median(runs.map((r) => r.latencyMs.p50)),
    p99: median(runs.map((r) => r.latencyMs.p99)),
    max: Math.max(...runs.map((r) => r.latencyMs.max)),
    gatewayCpu: gatewayCpu.length === 0 ? undefined : median(gatewayCpu),
    frontCpu: front.length === 0 ? undefined : median(front),
    serversCpu: median(runs.map((r) => r.serversCpuUsPerRequest)),
    gatewayRss: rss.length === 0 ? undefined : Math.max(...rss),
    loadCpu: Math.max(...runs.map((r) => r.loadCpuPercent)),
    non2xx: runs.reduce((sum, r) => sum + Object.entries(r.status).filter(([code]) => !code.startsWith('2')).reduce((s, [, n]) => s + n, 0), 0),
    errors: runs.reduce((sum, r) => sum + r.errors + r.timeouts, 0),
    logLinesPerRequest: lines.length === 0 ? undefined : median(lines)
  }
}

export interface SseSummary {
  id: string
  label: string
  firstEventP50: number
  firstEventP90: number
  totalP50: number
  eventsMin: number
  eventsMax: number
  readsMin: number
  readsMean: number
  maxEventsPerRead: number
  httpChunksMin: number
  everyEventOwnRead: boolean
  failures: number
  streams: number
}

export function summarizeSse (measured: Extract<Measured, { kind: 'sse' }>): SseSummary {
  const runs = measured.runs
  return {
    id: measured.id,
    label: measured.label,
    firstEventP50: median(runs.map((r) => r.firstEventMs.p50)),
    firstEventP90: median(runs.map((r) => r.firstEventMs.p90)),
    totalP50: median(runs.map((r) => r.totalMs.p50)),
    eventsMin: Math.min(...runs.map((r) => r.eventsMin)),
    eventsMax: Math.max(...runs.map((r) => r.eventsMax)),
    readsMin: Math.min(...runs.map((r) => r.readsWithEventsMin)),
    readsMean: median(runs.map((r) => r.readsWithEventsMean)),
    maxEventsPerRead: Math.max(...runs.map((r) => r.maxEventsPerRead)),
    httpChunksMin: Math.min(...runs.map((r) => r.httpChunksMin)),
    everyEventOwnRead: runs.every((r) => r.everyEventOwnRead),
    failures: runs.reduce((sum, r) => sum + r.failures, 0),
    streams: runs.reduce((sum, r) => sum + r.streams, 0)
  }
}

interface Summaries {
  throughput: LoadSummary[]
  latency: LoadSummary[]
  sse: SseSummary[]
  byId: Map<string, LoadSummary>
  sseById: Map<string, SseSummary>
}

function summaries (results: BenchResults): Summaries {
  const throughput: LoadSummary[] = []
  const latency: LoadSummary[] = []
  const sse: SseSummary[] = []
  for (const measured of results.measured) {
    if (measured.runs.length === 0) continue
    if (measured.kind === 'sse') sse.push(summarizeSse(measured))
    else (measured.kind === 'throughput' ? throughput : latency).push(summarizeLoad(measured))
  }
  return {
    throughput,
    latency,
    sse,
    byId: new Map([...throughput, ...latency].map((s) => [s.id, s])),
    sseById: new Map(sse.map((s) => [s.id, s]))
  }
}

// Formatting.

const int = (n: number | undefined): string => n === undefined || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US')
const fixed = (n: number | undefined, digits: number): string => n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits)
const mb = (bytes: number | undefined): string => bytes === undefined || !Number.isFinite(bytes) || bytes === 0 ? '—' : (bytes / 1048576).toFixed(0)
const ratio = (a: number | undefined, b: number | undefined): string => a === undefined || b === undefined || !Number.isFinite(a / b) ? '—' : `${(a / b).toFixed(2)}×`

export interface Target {
  name: string
  goal: string
  measured: string
  /** undefined: not measured in this run. */
  met: boolean | undefined
}

export function targets (results: BenchResults): Target[] {
  const s = summaries(results)
  const t = (id: string): LoadSummary | undefined => s.byId.get(id)
  const out: Target[] = []
  const add = (name: string, goal: string, measured: string, met: boolean | undefined): void => { out.push({ name, goal, measured, met }) }
  const rel = (a: LoadSummary | undefined, b: LoadSummary | undefined, min: number, what: string): [string, boolean | undefined] => {
    if (a === undefined || b === undefined) return ['not measured', undefined]
    const r = a.rps / b.rps
    return [`${r.toFixed(2)} (${int(a.rps)} / ${int(b.rps)} req/s ${what})`, r >= min]
  }
  let [text, met] = rel(t('3'), t('2b'), 0.75, '(3) / (2b)')
  add('Production pipeline vs bare pass-through', '(3) gateway → stub ≥ 0.75 × (2b) bare http-proxy-3', text, met);
  [text, met] = rel(t('5'), t('2'), 0.28, '(5) / (2)')
  add('Production path vs nginx alone', '(5) nginx → gateway → stub ≥ 0.28 × (2) nginx → stub', text, met)
  const cpu3 = t('3')?.gatewayCpu
  const cpu5 = t('5')?.gatewayCpu
  add('Gateway CPU per request', '≤ 100 µs (gateway process, (3) and (5))',
    cpu3 === undefined ? 'not measured' : `${fixed(cpu3, 0)} µs (3)${cpu5 === undefined ? '' : `, ${fixed(cpu5, 0)} µs (5)`}`,
    cpu3 === undefined ? undefined : Math.max(cpu3, cpu5 ?? 0) <= 100)
  const l1 = t('L1')
  const l3 = t('L3')
  add('Added latency at 1 connection', 'p50 (L3 gateway) − p50 (L1 direct) ≤ 0.3 ms',
    l1 === undefined || l3 === undefined ? 'not measured' : `${fixed((l3.p50 - l1.p50), 3)} ms (${fixed(l3.p50, 3)} − ${fixed(l1.p50, 3)})`,
    l1 === undefined || l3 === undefined ? undefined : l3.p50 - l1.p50 <= 0.3);
  [text, met] = rel(t('4'), t('2b'), 1, '(4) / (2b)')
  add('Cache hits', '(4) ≥ (2b) bare pass-through', results.settings.cacheWired ? text : `${text}; cache not wired in this build`, met);
  [text, met] = rel(t('6'), t('3'), 1, '(6) / (3)')
  add('Redis down: throughput', '(6) memory fallback ≥ (3) Redis path', text, met)
  // At 1 connection nothing queues, so the slowest request shows any wait on the dead Redis; at 32 it adds queueing.
  const six = t('6')
  const l6 = t('L6')
  add('Redis down: slowest request', `slowest request with Redis down ≤ the Redis timeout (${results.settings.redisTimeoutMs} ms), at 1 connection (L6)`,
    l6 === undefined ? 'not measured' : `${fixed(l6.max, 1)} ms at 1 connection (p99 ${fixed(l6.p99, 2)} ms)${six === undefined ? '' : `; ${fixed(six.max, 1)} ms at ${results.settings.connections} connections (6)`}`,
    l6 === undefined ? undefined : l6.max <= results.settings.redisTimeoutMs)
  const s1 = s.sseById.get('S1')
  const s2b = s.sseById.get('S2b')
  const s3 = s.sseById.get('S3')
  const s5 = s.sseById.get('S5')
  // S2b shows what any Node hop adds to a stream's first event (each stream is a new connection), so the gateway's own share reads off it.
  add('SSE: first event', 'first event (S3 gateway) ≤ 1 ms later than (S1) direct, p50',
    s1 === undefined || s3 === undefined
      ? 'not measured'
      : `+${fixed(s3.firstEventP50 - s1.firstEventP50, 3)} ms${s5 === undefined ? '' : ` (through nginx: +${fixed(s5.firstEventP50 - s1.firstEventP50, 3)} ms)`}` +
        (s2b === undefined ? '' : `; the bare pass-through (S2b) adds +${fixed(s2b.firstEventP50 - s1.firstEventP50, 3)} ms`),
    s1 === undefined || s3 === undefined ? undefined : s3.firstEventP50 - s1.firstEventP50 <= 1)
  // Timer jitter on a busy machine can put two of the stub's events in one write even direct, so a
  // path is judged against direct: no event lost, and as many separate reads per stream as direct gets.
  const streamed = [s3, s5].filter((x): x is SseSummary => x !== undefined)
  const reference = s1 === undefined ? undefined : Math.min(s1.readsMean, s1.eventsMin)
  add('SSE: every event its own chunk', 'every event arrives, each in a read of its own: reads per stream ≥ 95 % of direct\'s (S3, S5)',
    streamed.length === 0
      ? 'not measured'
      : streamed.map((x) => `${x.id}: ${x.eventsMin === x.eventsMax ? x.eventsMin : `${x.eventsMin}–${x.eventsMax}`} events, ${fixed(x.readsMean, 1)} reads per stream`).join('; ') +
        (s1 === undefined ? '' : ` (direct: ${fixed(s1.readsMean, 1)})`),
    streamed.length === 0 || s1 === undefined
      ? undefined
      : streamed.every((x) => x.failures === 0 && x.eventsMin === s1.eventsMax && x.eventsMax === s1.eventsMax && x.readsMean >= 0.95 * reference!))
  const rss = results.settings.gatewayPeakRssBytes
  add('Memory under load', 'gateway RSS ≤ 150 MB', rss > 0 ? `${mb(rss)} MB peak (VmHWM)` : 'not measured', rss > 0 ? rss <= 150 * 1048576 : undefined)
  const soak = results.soak
  add('Memory over 1 M requests', '< 10 % RSS growth (make bench-soak)',
    soak === undefined ? 'not run yet (make bench-soak)' : `${fixed((soak.rssLateBytes / soak.rssEarlyBytes - 1) * 100, 1)} % (${mb(soak.rssEarlyBytes)} → ${mb(soak.rssLateBytes)} MB, medians of the first and last tenth, over ${int(soak.requests)} requests)`,
    soak === undefined ? undefined : soak.rssLateBytes < soak.rssEarlyBytes * 1.1)
  return out
}

export function isPreliminary (results: BenchResults): boolean {
  return results.settings.seconds < 10 || results.settings.rounds < 2 || results.settings.only !== undefined || process.env.BENCH_PRELIMINARY !== undefined
}

function throughputTable (s: Summaries): string {
  const direct = s.byId.get('1')?.rps
  const nginx = s.byId.get('2')?.rps
  const rows = s.throughput.map((r) => `| (${r.id}) | ${r.label} | ${int(r.rps)} | ${Number.isFinite(r.spreadPct) ? `${int(r.rpsMin)}–${int(r.rpsMax)} (${fixed(r.spreadPct, 1)} %)` : '— (1 round)'} | ${fixed(r.p50, 2)} | ${fixed(r.p99, 2)} | ${ratio(r.rps, direct)} | ${ratio(r.rps, nginx)} | ${mb(r.gatewayRss)} | ${fixed(r.gatewayCpu, 0)} | ${fixed(r.frontCpu, 0)} | ${fixed(r.serversCpu, 0)} | ${fixed(r.loadCpu, 0)}${r.non2xx + r.errors > 0 ? ` ⚠ ${r.non2xx} non-2xx, ${r.errors} errors` : ''} |`)
  return ['| # | configuration | req/s (median) | min–max (spread) | p50 ms | p99 ms | × direct | × nginx | gateway RSS MB | gateway CPU µs/req | proxies CPU µs/req | all servers CPU µs/req | load CPU % |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|', ...rows].join('\n')
}

function latencyTable (s: Summaries): string {
  const direct = s.byId.get('L1')
  const rows = s.latency.map((r) => `| (${r.id}) | ${r.label} | ${fixed(r.p50, 3)} | ${fixed(r.p99, 3)} | ${direct === undefined ? '—' : `+${fixed(r.p50 - direct.p50, 3)}`} | ${int(r.rps)} | ${fixed(r.gatewayCpu, 0)} |`)
  return ['| # | path | p50 ms | p99 ms | p50 over direct, ms | req/s | gateway CPU µs/req |', '|---|---|---:|---:|---:|---:|---:|', ...rows].join('\n')
}

function sseTable (s: Summaries): string {
  const direct = s.sseById.get('S1')
  const rows = s.sse.map((r) => `| (${r.id}) | ${r.label} | ${fixed(r.firstEventP50, 3)} | ${fixed(r.firstEventP90, 3)} | ${direct === undefined ? '—' : `+${fixed(r.firstEventP50 - direct.firstEventP50, 3)}`} | ${fixed(r.totalP50, 1)} | ${r.eventsMin === r.eventsMax ? r.eventsMin : `${r.eventsMin}–${r.eventsMax}`} | ${fixed(r.readsMean, 1)} (min ${r.readsMin}) | ${r.maxEventsPerRead} | ${r.httpChunksMin} | ${r.failures}/${r.streams} |`)
  return ['| # | path | first event p50 ms | first event p90 ms | first event over direct, ms | total p50 ms | events / stream | reads with events per stream (mean) | most events in one read | HTTP chunks (min) | failed streams |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|', ...rows].join('\n')
}

function soakSection (soak: SoakResults | undefined): string {
  if (soak === undefined) return 'Not run yet: `make bench-soak` (BENCH_SOAK_REQUESTS, default 1 000 000) adds this section.'
  const growth = (soak.rssLateBytes / soak.rssEarlyBytes - 1) * 100
  return [
    `Run ${soak.machine.date} on commit ${soak.machine.commit}: ${int(soak.requests)} requests after a warm-up of ${int(soak.warmupRequests)}, ${soak.connections} connections, ${int(soak.users)} users, gateway → stub with the production settings (cache off), in ${fixed(soak.seconds, 0)} s (${int(soak.rps)} req/s).`,
    '',
    '| | value |',
    '|---|---:|',
    `| RSS, median of the first tenth of the run | ${mb(soak.rssEarlyBytes)} MB |`,
    `| RSS, median of the last tenth | ${mb(soak.rssLateBytes)} MB |`,
    `| growth (target < 10 %) | ${fixed(growth, 1)} % — **${growth < 10 ? 'met' : 'not met'}** |`,
    `| RSS right after the warm-up / at the end | ${mb(soak.rssBeforeBytes)} / ${mb(soak.rssAfterBytes)} MB |`,
    `| peak RSS (VmHWM, target ≤ 150 MB) | ${mb(soak.peakRssBytes)} MB — **${soak.peakRssBytes <= 150 * 1048576 ? 'met' : 'not met'}** |`,
    `| gateway CPU per request | ${fixed(soak.gatewayCpuUsPerRequest, 0)} µs |`,
    `| answers | ${Object.entries(soak.status).map(([code, n]) => `${code}: ${int(n)}`).join(', ')}${soak.errors > 0 ? `, ${soak.errors} errors` : ''} |`,
    '',
    `RSS is read every 500 ms (${soak.readings} readings); one reading lands anywhere on the garbage collector's sawtooth, so the growth compares medians. RSS along the run (requests → MB): ${soak.series.map(([n, bytes]) => `${int(n)} → ${mb(bytes)}`).join(', ')}.`
  ].join('\n')
}

function minutes (st: BenchSettings): string {
  const n = Math.ceil((st.rounds * (12 * (st.warmupSeconds + st.seconds + 0.4) + 3 * (st.sseStreams * 0.11 + 1)) + 15) / 60)
  return `${n} minute${n === 1 ? '' : 's'}`
}

function logLines (s: Summaries): string {
  const three = s.byId.get('3')?.logLinesPerRequest
  return three === undefined ? 'not measured' : `${fixed(three, 2)} gateway log lines per answer in (3) (one completion line each at info)`
}

/** Hand-written notes on where the time goes: kept across regenerations, between these markers. */
const PROFILE_BEGIN = '<!-- profile:begin -->'
const PROFILE_END = '<!-- profile:end -->'

/** The profile notes of the benchmarks.md being replaced, if it has any. */
function keptProfile (): string {
  try {
    const text = readFileSync(MD_FILE(), 'utf8')
    const begin = text.indexOf(PROFILE_BEGIN)
    const end = text.indexOf(PROFILE_END)
    if (begin !== -1 && end > begin) return text.slice(begin + PROFILE_BEGIN.length, end).trim()
  } catch { /* no earlier file */ }
  return 'Not written yet: profile the gateway (`BENCH_GATEWAY_NODE_ARGS="--cpu-prof …"`, then `node dist/bench/profile-top.js`) and note here where the time goes.'
}

export function markdown (results: BenchResults, profile: string = keptProfile()): string {
  const s = summaries(results)
  const m = results.machine
  const st = results.settings
  const preliminary = isPreliminary(results)
  const targetRows = targets(results).map((t) => `| ${t.name} | ${t.goal} | ${t.measured} | ${t.met === undefined ? '—' : t.met ? '**met**' : '**not met**'} |`)
  return `# Benchmarks

${preliminary
    ? `> **PRELIMINARY — not the reference figures.** This run was short (${st.seconds} s per configuration, ${st.rounds} round${st.rounds === 1 ? '' : 's'}${st.only === undefined ? '' : `, only ${st.only.join(', ')}`})${m.loadAtStart > 0.5 ? ` on a busy machine (load average ${m.loadAtStart.toFixed(2)} at the start)` : ''}. The reference run is \`make bench\` with the defaults (10 s, 2 rounds) on a quiet machine; it regenerates this file, the chart and docs/benchmarks.json.\n`
    : m.loadAtStart > 0.5 ? `> The machine was not quiet when this run started (load average ${m.loadAtStart.toFixed(2)}): compare ratios, not absolute numbers.\n` : ''}
What the gateway costs in front of an AI service, measured on one machine with its own processes on loopback. Everything on this page is generated by \`make bench\` (\`npm run bench\` after \`npm run build\`) from one run; the soak section by \`make bench-soak\`. The raw figures of every round are in [benchmarks.json](benchmarks.json).

![throughput, latency, CPU per request and SSE first event](benchmarks.png)

## Machine and run

| | |
|---|---|
| date | ${m.date} |
| commit | ${m.commit} |
| CPUs (nproc) | ${m.nproc} |
| CPU model | ${m.cpuModel} |
| kernel | ${m.kernel} |
| Node.js | ${m.node} |
| nginx | ${m.nginx} |
| redis-server | ${m.redis} |
| autocannon | ${m.autocannon} |
| load average (1 min) at start / end | ${m.loadAtStart.toFixed(2)} / ${m.loadAtEnd.toFixed(2)} |
| CPU pinning | ${st.pinning} |
| per configuration | ${st.warmupSeconds} s warm-up, then ${st.seconds} s measured; ${st.rounds} round${st.rounds === 1 ? '' : 's'}, alternating order; median and min–max over the rounds |
| load | autocannon, ${st.connections} connections, \`POST /v1/ai/generate\` (${st.requestBytes}-byte JSON body, ${st.answerBytes}-byte answer), through a gateway the bearer tokens of ${int(st.users)} distinct users in turn (elsewhere one token of the same size), no \`Accept-Encoding\` (nginx does not gzip) |
| completion log | ${logLines(s)} |
| nginx config | ${st.nginxSource} |
| rate limiter | ${st.limiterWired ? (st.limiterOnRedis ? `Redis sliding window; the ${int(st.users)} users go through it (${int(st.redisKeysAfter)} keys in Redis after the run)` : 'in memory (nothing written to Redis)') : 'not on the request path in this build'} |
| cache | ${st.cacheWired ? 'wired (hits confirmed by `X-Cache: HIT`)' : 'not wired in this build'} |

## What runs

- **stub upstream** (\`bench/stub-upstream.ts\`): node:http; \`/v1/ai/generate\` answers a fixed ~1 KB JSON in upstream-ai's shape; \`/v1/ai/chat\` streams 20 SSE events 5 ms apart, each its own write.
- **bare pass-through** (\`bench/bare-proxy.ts\`): http-proxy-3 with the gateway's upstream pool settings and nothing else — the floor for any http-proxy-3 based proxy.
- **gateway**: \`node dist/gateway/src/main.js\` with \`ENVIRONMENT=production\`, a random 48-byte \`JWT_SECRET_KEY\` (every request's HS256 token is verified), \`REDIS_URL\` to a real redis-server (sliding-window limiter, \`AI_ENGINE_RATE_LIMIT_PER_MIN=10000\`, never reached), \`LOG_LEVEL=info\` with its log in a file (one completion line per request), cache off except in (4).
- **nginx**: the production config made to listen on loopback (see *nginx config* above), one worker per server CPU.
- **Redis down** (6, L6): a gateway whose redis-server is killed before its first measurement; the limiter and cache run on their memory fallback.
- CPU per request is read from \`/proc/<pid>/stat\` (utime + stime) before and after each measured period, divided by the answers in it: *gateway* is the gateway process alone, *proxies* whatever stands in front of the stub (nginx master and workers, the bare proxy, the gateway, or nginx and the gateway), *all servers* adds the stub and Redis. RSS is sampled every 200 ms. *Load CPU %* is the load generator's own CPU use: near 100 % means the client, not the server, was the limit.

## Throughput, ${st.connections} connections

${s.throughput.length === 0 ? 'Not measured in this run.' : throughputTable(s)}

*× direct* and *× nginx* are ratios to (1) and (2) in the same run.

## Latency at 1 connection

${s.latency.length === 0 ? 'Not measured in this run.' : latencyTable(s)}

## Server-sent events

One stream at a time, each on a new connection, timed on the raw socket from the request's last byte: the first complete event, the end of the stream, and how the events arrived (the stub writes one every 5 ms, so a proxy that forwards each event at once delivers one per read).

${s.sse.length === 0 ? 'Not measured in this run.' : sseTable(s)}

## Targets

| target | goal | measured | |
|---|---|---|---|
${targetRows.join('\n')}

How the throughput targets are read: the gateway alone is compared with the bare http-proxy-3 pass-through (both single Node processes, no nginx), and the production path with nginx in front is compared with nginx alone in front of the stub.

## Profile

${PROFILE_BEGIN}
${profile}
${PROFILE_END}

## Soak (\`make bench-soak\`)

<!-- soak:begin -->
${soakSection(results.soak)}
<!-- soak:end -->
${results.notes.length === 0 ? '' : `\n## Notes on this run\n\n${results.notes.map((n) => `- ${n}`).join('\n')}\n`}
## Running it

- \`make bench\` installs what it needs (nginx, fonts for the chart), builds, and runs everything (about ${minutes(st)} with these settings); \`make bench-soak\` runs the soak. Neither is part of \`make test\`.
- Environment: \`BENCH_SECONDS\` (10), \`BENCH_ROUNDS\` (2), \`BENCH_WARMUP_SECONDS\` (3), \`BENCH_CONNECTIONS\` (32), \`BENCH_USERS\` (10000), \`BENCH_SSE_STREAMS\` (100), \`BENCH_ONLY\` (ids, e.g. \`3,L3,S3\`), \`BENCH_NOTE\`, \`BENCH_GATEWAY_NODE_ARGS\` (e.g. \`--cpu-prof --cpu-prof-dir=/tmp/prof\`), \`BENCH_KEEP_TMP=1\` (keep logs and configs); soak: \`BENCH_SOAK_REQUESTS\` (1000000).
- Run it on a quiet machine: anything else on the server CPU shows up in every figure. The ratios within one run are more stable than the absolute numbers.
`
}

// The chart: an SVG drawn here, rendered to PNG by resvg.

const esc = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

interface Bar { label: string; value: number; low?: number; high?: number; text: string; color: string }

function barPanel (y: number, title: string, bars: Bar[], unit: string, target?: { value: number; label: string }): { svg: string; height: number } {
  const left = 250
  const width = 480
  const row = 26
  const top = y + 30
  const max = Math.max(...bars.map((b) => b.high ?? b.value), target?.value ?? 0) * 1.05 || 1
  const x = (v: number): number => left + (v / max) * width
  const parts = [`<text x="20" y="${y + 18}" font-size="15" font-weight="bold">${esc(title)}</text>`]
  bars.forEach((bar, i) => {
    const by = top + i * row
    parts.push(`<text x="${left - 8}" y="${by + 15}" font-size="12" text-anchor="end">${esc(bar.label)}</text>`)
    parts.push(`<rect x="${left}" y="${by + 3}" width="${Math.max(1, x(bar.value) - left).toFixed(1)}" height="16" fill="${bar.color}"/>`)
    if (bar.low !== undefined && bar.high !== undefined && bar.high > bar.low) {
      parts.push(`<line x1="${x(bar.low).toFixed(1)}" y1="${by + 11}" x2="${x(bar.high).toFixed(1)}" y2="${by + 11}" stroke="#222" stroke-width="1.5"/>`)
      for (const v of [bar.low, bar.high]) parts.push(`<line x1="${x(v).toFixed(1)}" y1="${by + 6}" x2="${x(v).toFixed(1)}" y2="${by + 16}" stroke="#222" stroke-width="1.5"/>`)
    }
    parts.push(`<text x="${Math.max(x(bar.value), x(bar.high ?? 0)) + 6}" y="${by + 15}" font-size="12">${esc(bar.text)}</text>`)
  })
  const bottom = top + bars.length * row
  if (target !== undefined) {
    parts.push(`<line x1="${x(target.value).toFixed(1)}" y1="${top - 2}" x2="${x(target.value).toFixed(1)}" y2="${bottom}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,3"/>`)
    parts.push(`<text x="${x(target.value).toFixed(1)}" y="${bottom + 13}" font-size="11" fill="#c0392b" text-anchor="middle">${esc(target.label)}</text>`)
  }
  parts.push(`<line x1="${left}" y1="${top - 2}" x2="${left}" y2="${bottom}" stroke="#888"/>`)
  parts.push(`<text x="${left + width}" y="${y + 18}" font-size="11" fill="#555" text-anchor="end">${esc(unit)}</text>`)
  return { svg: parts.join('\n'), height: bottom - y + (target === undefined ? 10 : 22) }
}

const COLORS: Record<string, string> = { 1: '#7f8c8d', 2: '#95a5a6', '2b': '#a3b1bf', 3: '#2e86de', 4: '#27ae60', 5: '#8e44ad', 6: '#e67e22' }

export function chartSvg (results: BenchResults): string {
  const s = summaries(results)
  const direct = s.byId.get('1')?.rps
  const panels: string[] = []
  let y = 60
  const push = (panel: { svg: string; height: number }): void => { panels.push(panel.svg); y += panel.height + 18 }
  if (s.throughput.length > 0) {
    push(barPanel(y, `Throughput, ${results.settings.connections} connections (median, min–max over rounds)`, s.throughput.map((r) => ({
      label: `(${r.id}) ${r.label}`, value: r.rps, low: r.rpsMin, high: r.rpsMax, color: COLORS[r.id] ?? '#2e86de',
      text: `${int(r.rps)} req/s${direct === undefined || r.id === '1' ? '' : ` · ${(r.rps / direct).toFixed(2)}× direct`}`
    })), 'requests / s'))
    push(barPanel(y, 'Latency under load: p50 (bar) and p99 (text)', s.throughput.map((r) => ({
      label: `(${r.id}) ${r.label}`, value: r.p50, color: COLORS[r.id] ?? '#2e86de', text: `p50 ${fixed(r.p50, 2)} ms · p99 ${fixed(r.p99, 2)} ms`
    })), 'ms'))
    const proxied = s.throughput.filter((r) => r.frontCpu !== undefined)
    if (proxied.length > 0) {
      push(barPanel(y, 'CPU per request of the proxies in front of the stub', proxied.map((r) => ({
        label: `(${r.id}) ${r.label}`,
        value: r.frontCpu!,
        color: COLORS[r.id] ?? '#2e86de',
        text: `${fixed(r.frontCpu, 0)} µs${r.gatewayCpu !== undefined && r.id === '5' ? ` (gateway ${fixed(r.gatewayCpu, 0)} µs)` : ''}`
      })), 'µs', { value: 100, label: 'gateway target 100 µs' }))
    }
  }
  if (s.latency.length > 0) {
    push(barPanel(y, 'Latency at 1 connection, p50', s.latency.map((r) => ({
      label: `(${r.id}) ${r.label}`, value: r.p50, color: '#34495e', text: `${fixed(r.p50, 3)} ms (p99 ${fixed(r.p99, 3)})`
    })), 'ms'))
  }
  if (s.sse.length > 0) {
    push(barPanel(y, 'SSE: time to first event, p50', s.sse.map((r) => ({
      label: `(${r.id}) ${r.label}`, value: r.firstEventP50, color: '#16a085',
      text: `${fixed(r.firstEventP50, 3)} ms · total ${fixed(r.totalP50, 1)} ms · ${r.eventsMin} events in ${fixed(r.readsMean, 1)} reads`
    })), 'ms'))
  }
  const m = results.machine
  const preliminary = isPreliminary(results)
  const height = y + 30
  return `<svg xmlns="http://www.w3.org/2000/svg" width="1100" height="${height}" font-family="DejaVu Sans, sans-serif">
<rect width="1100" height="${height}" fill="#ffffff"/>
<text x="20" y="28" font-size="19" font-weight="bold">AI edge gateway benchmark${preliminary ? ' — PRELIMINARY (short run)' : ''}</text>
<text x="20" y="48" font-size="12" fill="#444">${esc(`${m.date} · ${m.commit} · ${m.nproc} × ${m.cpuModel} · node ${m.node} · nginx ${m.nginx} · ${results.settings.seconds} s × ${results.settings.rounds} round(s)`)}</text>
${panels.join('\n')}
<text x="20" y="${height - 10}" font-size="11" fill="#666">${esc(`Generated by bench/run.ts (make bench). ${results.settings.pinning}.`)}</text>
</svg>
`
}

async function renderPng (svg: string, file: string): Promise<void> {
  const { Resvg } = await import('@resvg/resvg-js')
  const fontFiles = ['DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'].map((name) => join('/usr/share/fonts/truetype/dejavu', name)).filter((path) => existsSync(path))
  const resvg = new Resvg(svg, {
    background: '#ffffff',
    fitTo: { mode: 'width', value: 1100 },
    font: { fontFiles, loadSystemFonts: fontFiles.length === 0, defaultFontFamily: 'DejaVu Sans' }
  })
  writeFileSync(file, resvg.render().asPng())
}

/** Writes benchmarks.json, .md and .png; keeps the soak section of an earlier JSON. */
export async function writeReport (results: BenchResults): Promise<void> {
  mkdirSync(OUT_DIR, { recursive: true })
  if (results.soak === undefined && existsSync(JSON_FILE())) {
    try {
      results.soak = (JSON.parse(readFileSync(JSON_FILE(), 'utf8')) as BenchResults).soak
    } catch { /* an unreadable earlier file: start afresh */ }
  }
  writeFileSync(JSON_FILE(), `${JSON.stringify(results, null, 2)}\n`)
  writeFileSync(MD_FILE(), markdown(results))
  await renderPng(chartSvg(results), PNG_FILE())
  process.stderr.write(`bench: wrote ${MD_FILE()}, ${PNG_FILE()} and ${JSON_FILE()}\n`)
}

/** For the soak: adds its results to benchmarks.json and re-renders the Markdown. */
export function writeSoak (soak: SoakResults): void {
  mkdirSync(OUT_DIR, { recursive: true })
  if (!existsSync(JSON_FILE())) {
    writeFileSync(JSON_FILE(), `${JSON.stringify({ soak }, null, 2)}\n`)
    process.stderr.write(`bench: no main run yet; wrote the soak to ${JSON_FILE()} (make bench renders it into benchmarks.md)\n`)
    return
  }
  const results = JSON.parse(readFileSync(JSON_FILE(), 'utf8')) as BenchResults
  results.soak = soak
  writeFileSync(JSON_FILE(), `${JSON.stringify(results, null, 2)}\n`)
  if (results.machine !== undefined) writeFileSync(MD_FILE(), markdown(results))
  process.stderr.write(`bench: wrote the soak into ${JSON_FILE()} and ${MD_FILE()}\n`)
}

export function printSummary (results: BenchResults): void {
  const s = summaries(results)
  const lines: string[] = ['']
  const pad = (text: string, n: number): string => text.length >= n ? text : text + ' '.repeat(n - text.length)
  const lpad = (text: string, n: number): string => text.length >= n ? text : ' '.repeat(n - text.length) + text
  const direct = s.byId.get('1')?.rps
  const nginx = s.byId.get('2')?.rps
  if (s.throughput.length > 0) {
    lines.push(`${pad('configuration', 34)}${lpad('req/s', 9)}${lpad('spread', 9)}${lpad('p50 ms', 9)}${lpad('p99 ms', 9)}${lpad('×direct', 9)}${lpad('×nginx', 8)}${lpad('RSS MB', 8)}${lpad('gw µs/req', 11)}${lpad('proxy µs', 10)}${lpad('load %', 8)}`)
    for (const r of s.throughput) {
      lines.push(`${pad(`(${r.id}) ${r.label}`, 34)}${lpad(int(r.rps), 9)}${lpad(`${fixed(r.spreadPct, 1)}%`, 9)}${lpad(fixed(r.p50, 2), 9)}${lpad(fixed(r.p99, 2), 9)}${lpad(ratio(r.rps, direct), 9)}${lpad(ratio(r.rps, nginx), 8)}${lpad(mb(r.gatewayRss), 8)}${lpad(fixed(r.gatewayCpu, 0), 11)}${lpad(fixed(r.frontCpu, 0), 10)}${lpad(fixed(r.loadCpu, 0), 8)}`)
    }
    lines.push('')
  }
  for (const r of s.latency) lines.push(`${pad(`(${r.id}) ${r.label}, 1 connection`, 48)} p50 ${fixed(r.p50, 3)} ms  p99 ${fixed(r.p99, 3)} ms`)
  for (const r of s.sse) lines.push(`${pad(`(${r.id}) SSE ${r.label}`, 48)} first event ${fixed(r.firstEventP50, 3)} ms  total ${fixed(r.totalP50, 1)} ms  ${r.eventsMin} events in ${fixed(r.readsMean, 1)} reads (mean)`)
  lines.push('')
  for (const t of targets(results)) lines.push(`${t.met === undefined ? '  ?  ' : t.met ? ' MET ' : ' NOT '} ${t.name}: ${t.measured}`)
  if (results.notes.length > 0) lines.push('', ...results.notes.map((n) => `note: ${n}`))
  process.stdout.write(`${lines.join('\n')}\n`)
}

// `node dist/bench/report.js`: renders benchmarks.md and .png again from benchmarks.json (after a change to this file).
if (process.argv[1]?.endsWith('report.js') === true) {
  const results = JSON.parse(readFileSync(JSON_FILE(), 'utf8')) as BenchResults
  writeReport(results).catch((error: unknown) => {
    process.stderr.write(`report: ${(error as Error).stack ?? String(error)}\n`)
    process.exit(1)
  })
}
