/**
 * Process plumbing for the benchmark: one cleanup list that runs on normal
 * exit, errors and signals (so no server outlives the run), CPU pinning with
 * taskset, and readers for /proc (CPU ticks, RSS, children).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs'
import type { Teardown } from '../common/testkit/process.js'
import { waitFor } from '../common/testkit/ports.js'

/** Teardowns run last-registered first; pids are SIGKILLed synchronously if the process exits abruptly. */
export class Cleanup implements Teardown {
  readonly #fns: Array<() => unknown> = []
  readonly pids = new Set<number>()
  #running: Promise<void> | undefined

  teardown (fn: () => unknown): void {
    this.#fns.push(fn)
  }

  track (pid: number | undefined): void {
    if (pid !== undefined) this.pids.add(pid)
  }

  async run (): Promise<void> {
    this.#running ??= (async () => {
      for (let fn = this.#fns.pop(); fn !== undefined; fn = this.#fns.pop()) {
        try { await fn() } catch { /* keep tearing down */ }
      }
      this.killAll()
    })()
    await this.#running
  }

  /** Last resort, synchronous: whatever is still alive gets SIGKILL. */
  killAll (): void {
    for (const pid of this.pids) {
      try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
    }
    this.pids.clear()
  }
}

/**
 * Runs `main` with `cleanup` guaranteed on return, throw, SIGINT, SIGTERM,
 * SIGHUP and uncaught errors; sets the exit code.
 */
export function runMain (cleanup: Cleanup, main: () => Promise<void>): void {
  let finishing = false
  const finish = (code: number): void => {
    if (finishing) return
    finishing = true
    cleanup.run().finally(() => { process.exit(code) })
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping every process it started\n`)
      finish(130)
    })
  }
  process.on('uncaughtException', (error) => {
    process.stderr.write(`bench: ${error.stack ?? String(error)}\n`)
    finish(1)
  })
  process.on('exit', () => { cleanup.killAll() })
  main().then(() => { finish(0) }, (error: unknown) => {
    // Once a signal is tearing everything down, the measurement it cut short fails: not news.
    if (!finishing) process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`)
    finish(1)
  })
}

/** Which CPUs the load generator gets and which the servers get. */
export interface CpuPlan {
  /** taskset is there and at least two CPUs are allowed. */
  pinned: boolean
  load: string
  servers: string
  description: string
}

function allowedCpus (): number[] {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('Cpus_allowed_list:'))
  const cpus: number[] = []
  for (const part of (line?.split(':')[1] ?? '').trim().split(',')) {
    if (part === '') continue
    const [from, to] = part.split('-').map(Number)
    for (let cpu = from!; cpu <= (to ?? from!); cpu++) cpus.push(cpu)
  }
  return cpus
}

export function hasCommand (command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export function cpuPlan (): CpuPlan {
  const cpus = allowedCpus()
  if (cpus.length < 2 || !hasCommand('taskset')) {
    return { pinned: false, load: '', servers: '', description: `not pinned (${cpus.length} CPU${cpus.length === 1 ? '' : 's'} allowed${hasCommand('taskset') ? '' : ', no taskset'}): load and servers share the CPUs` }
  }
  const load = String(cpus[0])
  const servers = cpus.slice(1).join(',')
  return { pinned: true, load, servers, description: `load generator on CPU ${load}, servers (stub, proxies, gateway, nginx, Redis) on CPU ${servers}` }
}

/** The command line that runs `command` on `cpus` (unchanged when not pinned). */
export function pinnedCommand (plan: CpuPlan, cpus: string, command: string, args: string[]): [string, string[]] {
  return plan.pinned ? ['taskset', ['-c', cpus, command, ...args]] : [command, args]
}

/** Moves this process (all its threads) to `cpus`. */
export function pinSelf (plan: CpuPlan, cpus: string): void {
  if (!plan.pinned) return
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' })
}

/** Environment for children: ours, minus what would change how node runs them. */
export function childEnv (extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, ...extra }
  delete env.NODE_OPTIONS
  return env
}

export interface LoggedProcess {
  child: ChildProcess
  pid: number
  logFile: string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<void>
}

/**
 * Spawns a process whose stdout and stderr go straight to `logFile`
 * (appended, so it can be truncated while open) rather than through a pipe
 * to this process: a gateway at info writes a line per request, and reading
 * them here would cost CPU and memory on the load side.
 */
export function spawnToFile (cleanup: Cleanup, command: string, args: string[], env: Record<string, string | undefined>, logFile: string): LoggedProcess {
  const fd = openSync(logFile, 'a')
  const child = spawn(command, args, { env: childEnv(env), stdio: ['ignore', fd, fd] })
  closeSync(fd)
  if (child.pid === undefined) throw new Error(`could not start ${command}`)
  const pid = child.pid
  cleanup.track(pid)
  const exited = once(child, 'exit').then(([code, signal]) => {
    cleanup.pids.delete(pid)
    return { code: code as number | null, signal: signal as NodeJS.Signals | null }
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    try { await exited } finally { clearTimeout(timer) }
  }
  cleanup.teardown(async () => { await stop('SIGKILL') })
  return { child, pid, logFile, exited, stop }
}

/** Waits for a `{"msg":"listening","port":N}` line in a log file. */
export async function listeningPort (proc: LoggedProcess, what: string, timeoutMs = 15_000): Promise<number> {
  let exited = false
  void proc.exited.then(() => { exited = true })
  return await waitFor(() => {
    const text = readFileSync(proc.logFile, 'utf8')
    for (const line of text.split('\n')) {
      if (!line.includes('"listening"')) continue
      try {
        const entry = JSON.parse(line) as { msg?: unknown; port?: unknown }
        if (entry.msg === 'listening' && typeof entry.port === 'number') return entry.port
      } catch { /* not JSON */ }
    }
    if (exited) throw new Error(`${what} exited before listening:\n${text.slice(-4000)}`)
    return undefined
  }, { timeoutMs, intervalMs: 25, what: `${what} to listen` })
}

// /proc readers.

let clockTicks: number | undefined
/** Clock ticks per second (USER_HZ), the unit of utime and stime. */
export function ticksPerSecond (): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

function statFields (pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** utime + stime of a process, in seconds (0 if it is gone). */
export function cpuSeconds (pid: number): number {
  const fields = statFields(pid)
  if (fields === undefined) return 0
  // After the name: state(3) ppid(4) … utime(14) stime(15), so indexes 11 and 12 here.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
}

export function cpuSecondsOf (pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
}

/** The pids whose parent is `pid` (nginx workers of a master). */
export function childrenOf (pid: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const fields = statFields(Number(entry))
    if (fields !== undefined && Number(fields[1]) === pid) children.push(Number(entry))
  }
  return children
}

export interface Memory {
  /** Resident set size now, in bytes. */
  rss: number
  /** Peak resident set size since start (VmHWM), in bytes. */
  peak: number
}

export function memoryOf (pid: number): Memory {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (name: string): number => Number(/\s(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '')?.[1] ?? 0) * 1024
    return { rss: kb('VmRSS'), peak: kb('VmHWM') }
  } catch {
    return { rss: 0, peak: 0 }
  }
}

/** Samples the peak RSS of `pid` every `intervalMs` until stopped. */
export function sampleRss (pid: number, intervalMs = 200): { stop: () => number } {
  let max = memoryOf(pid).rss
  const timer = setInterval(() => { max = Math.max(max, memoryOf(pid).rss) }, intervalMs)
  return {
    stop: () => {
      clearInterval(timer)
      return Math.max(max, memoryOf(pid).rss)
    }
  }
}
