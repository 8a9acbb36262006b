/**
 * What the fault suite (gateway/test/reliability/) shares: load loops that
 * time every answer, percentiles, log-line counts, a process's RSS, and the
 * integers in raw Redis replies.
 */
import { readFileSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { sleep, waitFor } from '../../../common/testkit/ports.js'
import type { RunningService } from '../../../common/testkit/process.js'
import { bearer, call, type Reply } from './gateway.js'
import { generateBody } from './generate.js'

/** The integer in a RESP integer reply (":20\r\n"). */
export const respInteger = (reply: string): number => Number(/^:(-?\d+)\r\n$/.exec(reply)?.[1] ?? NaN)

/** The members of a RESP array of bulk strings ("*2\r\n$3\r\nabc\r\n…"). */
export function respArray (reply: string): string[] {
  const lines = reply.split('\r\n')
  const members: string[] = []
  for (let i = 1; i < lines.length; i++) {
    if (lines[i]!.startsWith('$') && lines[i] !== '$-1') members.push(lines[++i]!)
  }
  return members
}

export interface Sample {
  status: number
  ms: number
  /** performance.now() when the answer was complete. */
  at: number
  reply: Reply
}

/** The p-th percentile (0–100) of `values`, nearest rank. */
export function percentile (values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export interface Load {
  samples: Sample[]
  /** Stops the loops and waits for the requests in flight. */
  stop: () => Promise<Sample[]>
}

/**
 * `workers` loops, each sending generate requests one after another (worker
 * w, request i: user `${userPrefix}-${w}`, body sign `s${i % signs}`) until
 * stopped; every answer is timed.
 */
export function startLoad (baseUrl: string, options: { workers: number; userPrefix: string; signs?: number }): Load {
  const samples: Sample[] = []
  let running = true
  const auths = Promise.all(Array.from({ length: options.workers }, async (_, worker) => await bearer({ sub: `${options.userPrefix}-${worker}` })))
  const loops = auths.then(async (headers) => await Promise.all(headers.map(async (auth) => {
    for (let i = 0; running; i++) {
      const started = performance.now()
      const reply = await call(baseUrl, '/v1/ai/generate', { headers: auth, body: generateBody(`s${i % (options.signs ?? 10)}`) })
      const at = performance.now()
      samples.push({ status: reply.status, ms: at - started, at, reply })
    }
  })))
  return {
    samples,
    stop: async () => {
      running = false
      await loops
      return samples
    }
  }
}

/** Samples whose answer completed within [from, to) (performance.now() values). */
export const between = (samples: Sample[], from: number, to: number): Sample[] => samples.filter((sample) => sample.at >= from && sample.at < to)

/** Status counts, e.g. `{ 200: 120 }`. */
export function statuses (samples: Sample[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const { status } of samples) counts[status] = (counts[status] ?? 0) + 1
  return counts
}

/** Lines of the gateway's stdout log with this message (and level, when given). */
export const logLines = (gateway: RunningService, msg: string, level?: string): Array<Record<string, unknown>> =>
  gateway.logs().filter((line) => line.msg === msg && (level === undefined || line.level === level))

/** Waits for a first such line, then a moment for any duplicate to show (pino writes asynchronously); returns the count. */
export async function settledCount (gateway: RunningService, match: (line: Record<string, unknown>) => boolean, what: string, timeoutMs = 10_000): Promise<number> {
  await waitFor(() => gateway.logs().some(match) ? true : undefined, { timeoutMs, what })
  await sleep(150)
  return gateway.logs().filter(match).length
}

/** Resident set size of a process, from /proc (Linux), in bytes. */
export function rssBytes (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]
  if (kb === undefined) throw new Error(`no VmRSS for ${pid}`)
  return Number(kb) * 1024
}

/** GET /health, parsed. */
export async function health (gateway: RunningService): Promise<{ status: number; body: any }> {
  const reply = await call(gateway.url, '/health')
  return { status: reply.status, body: reply.json() }
}

/** This process's used heap after a full garbage collection (gc exposed at run time: tap starts test files without --expose-gc). */
export function heapAfterGc (): number {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
