/**
 * Child processes for integration tests: a built service (node dist/…) on
 * port 0 whose bound port is read back from its "listening" log line, with
 * every output line kept so tests can assert on logs.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { waitFor } from './ports.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url).href.replace(/\/dist\/$/, '/'))

export interface Teardown { teardown: (fn: () => unknown) => void }

export interface RunningProcess {
  child: ChildProcess
  /** Every line the process wrote to stdout, in order. */
  stdout: string[]
  /** Every line the process wrote to stderr, in order. */
  stderr: string[]
  /** stdout lines that are JSON objects (log lines), parsed. */
  logs: () => Array<Record<string, unknown>>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Sends SIGTERM (or `signal`) and waits for the exit; SIGKILL after `graceMs`. */
  stop: (signal?: NodeJS.Signals, graceMs?: number) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export function spawnProcess (t: Teardown, command: string, args: string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const stdout: string[] = []
  const stderr: string[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => stdout.push(line))
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line))
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  const stop: RunningProcess['stop'] = async (signal = 'SIGTERM', graceMs = 10_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
      try { return await exited } finally { clearTimeout(timer) }
    }
    return await exited
  }
  t.teardown(async () => { await stop('SIGKILL') })
  const logs = (): Array<Record<string, unknown>> => stdout.flatMap((line) => {
    try {
      const value: unknown = JSON.parse(line)
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? [value as Record<string, unknown>] : []
    } catch {
      return []
    }
  })
  return { child, stdout, stderr, logs, exited, stop }
}

export interface RunningService extends RunningProcess {
  port: number
  url: string
}

/**
 * Starts `node <script>` (a path under dist/, relative to the project root)
 * with HOST=127.0.0.1 PORT=0 and waits for its "listening" log line.
 */
export async function startService (t: Teardown, script: string, env: Record<string, string | undefined> = {}): Promise<RunningService> {
  const running = spawnProcess(t, process.execPath, [script], {
    env: { HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env }
  })
  const port = await Promise.race([
    waitFor(() => {
      const line = running.logs().find((entry) => entry.msg === 'listening')
      return typeof line?.port === 'number' ? line.port : undefined
    }, { timeoutMs: 15_000, what: `${script} to listen` }),
    running.exited.then(({ code, signal }) => {
      throw new Error(`${script} exited (code ${code}, signal ${signal}) before listening:\n${[...running.stdout, ...running.stderr].join('\n')}`)
    })
  ])
  return { ...running, port, url: `http://127.0.0.1:${port}` }
}
