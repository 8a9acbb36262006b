/**
 * One measurement: a load (or SSE) process pinned to the load CPU, with the
 * servers' CPU counters read from /proc right before and after the measured
 * period and the gateway's RSS sampled during it.
 */
import { once } from 'node:events'
import { join } from 'node:path'
import { truncateSync } from 'node:fs'
import { ROOT, spawnProcess } from '../common/testkit/process.js'
import { waitFor } from '../common/testkit/ports.js'
import { cpuSecondsOf, memoryOf, pinnedCommand, sampleRss, type Cleanup, type CpuPlan } from './procs.js'
import type { LoadResult, LoadSpec } from './load.js'
import type { SseResult, SseSpec } from './sse-client.js'
import { countLines } from './stack.js'

export interface Subject {
  /** Every server process the request crosses (stub, proxies, nginx master and workers, Redis). */
  servers: () => number[]
  /** The proxies in front of the stub (nginx, the bare proxy, the gateway, or nginx and the gateway). */
  front?: () => number[]
  /** The gateway process, when the path has one. */
  gateway?: { pid: number; logFile: string } | undefined
}

export interface LoadRun extends LoadResult {
  /** CPU time of the gateway process per response, in µs. */
  gatewayCpuUsPerRequest?: number | undefined
  /** CPU time of the proxies in front of the stub per response, in µs. */
  frontCpuUsPerRequest?: number | undefined
  /** CPU time of all server processes per response, in µs. */
  serversCpuUsPerRequest: number
  /** Highest gateway RSS sampled during the measurement, in bytes. */
  gatewayRssBytes?: number | undefined
  /** Gateway log lines written per response (warm-up and measurement), ~1 with the completion log at info. */
  logLinesPerRequest?: number | undefined
}

function lineWith (lines: string[], prefix: string): string | undefined {
  return lines.find((line) => line.startsWith(prefix))
}

export interface LoadHooks {
  /** With `amount`: called at each PROGRESS line with the response count. */
  onProgress?: (responses: number) => void
  /** Called right before the measured period starts. */
  onStart?: () => void
}

export async function measureLoad (cleanup: Cleanup, plan: CpuPlan, spec: LoadSpec, subject: Subject, hooks: LoadHooks = {}): Promise<LoadRun> {
  const [command, args] = pinnedCommand(plan, plan.load, process.execPath, [join(ROOT, 'dist/bench/load.js'), JSON.stringify(spec)])
  const load = spawnProcess(cleanup, command, args)
  cleanup.track(load.child.pid)
  // 'close' comes after the last line of output has been read; an exit without a RESULT line is a failure.
  const closed = once(load.child, 'close')
  const failed = closed.then(() => {
    const line = lineWith(load.stdout, 'RESULT ')
    if (line !== undefined) return line
    throw new Error(`load process exited (code ${load.child.exitCode}, signal ${load.child.signalCode}):\n${[...load.stdout, ...load.stderr].join('\n').slice(-3000)}`)
  })
  // With `amount`, allow for as little as 100 requests a second.
  const patience = ((spec.warmupSeconds ?? 0) + (spec.seconds ?? 0)) * 1000 + 60_000 + (spec.amount ?? 0) * 10
  if ((spec.warmupSeconds ?? 0) > 0) {
    await Promise.race([waitFor(() => lineWith(load.stdout, 'WARM'), { timeoutMs: patience, what: 'the warm-up' }), failed])
  }
  const servers = subject.servers()
  if (subject.gateway !== undefined) truncateSync(subject.gateway.logFile, 0)
  const serversBefore = cpuSecondsOf(servers)
  const gatewayBefore = subject.gateway === undefined ? 0 : cpuSecondsOf([subject.gateway.pid])
  const front = subject.front?.() ?? []
  const frontBefore = cpuSecondsOf(front)
  const rss = subject.gateway === undefined ? undefined : sampleRss(subject.gateway.pid)
  hooks.onStart?.()
  if ((spec.warmupSeconds ?? 0) > 0) load.child.kill('SIGUSR2')
  let seen = 0
  const resultLine = await Promise.race([waitFor(() => {
    if (hooks.onProgress !== undefined) {
      const progress = load.stdout.filter((line) => line.startsWith('PROGRESS '))
      for (; seen < progress.length; seen++) hooks.onProgress(Number(progress[seen]!.slice(9)))
    }
    return lineWith(load.stdout, 'RESULT ')
  }, { timeoutMs: patience, intervalMs: 50, what: 'the load result' }), failed])
  const serversAfter = cpuSecondsOf(servers)
  const gatewayAfter = subject.gateway === undefined ? 0 : cpuSecondsOf([subject.gateway.pid])
  const frontAfter = cpuSecondsOf(front)
  const rssPeak = rss?.stop()
  await closed
  const result = JSON.parse(resultLine.slice(7)) as LoadResult
  const perRequest = (seconds: number): number => result.responses === 0 ? 0 : seconds * 1e6 / result.responses
  let logLinesPerRequest: number | undefined
  if (subject.gateway !== undefined) {
    logLinesPerRequest = result.responses === 0 ? 0 : countLines(subject.gateway.logFile) / result.responses
    truncateSync(subject.gateway.logFile, 0)
  }
  return {
    ...result,
    serversCpuUsPerRequest: perRequest(serversAfter - serversBefore),
    frontCpuUsPerRequest: front.length === 0 ? undefined : perRequest(frontAfter - frontBefore),
    gatewayCpuUsPerRequest: subject.gateway === undefined ? undefined : perRequest(gatewayAfter - gatewayBefore),
    gatewayRssBytes: rssPeak,
    logLinesPerRequest
  }
}

export async function measureSse (cleanup: Cleanup, plan: CpuPlan, spec: SseSpec): Promise<SseResult> {
  const [command, args] = pinnedCommand(plan, plan.load, process.execPath, [join(ROOT, 'dist/bench/sse-client.js'), JSON.stringify(spec)])
  const client = spawnProcess(cleanup, command, args)
  cleanup.track(client.child.pid)
  await once(client.child, 'close')
  const code = client.child.exitCode
  const line = lineWith(client.stdout, 'RESULT ')
  if (code !== 0 || line === undefined) throw new Error(`sse-client failed (code ${code}):\n${client.stderr.join('\n').slice(-3000)}`)
  return JSON.parse(line.slice(7)) as SseResult
}

export { memoryOf }
