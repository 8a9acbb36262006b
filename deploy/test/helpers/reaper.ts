/**
 * A safety net for child processes: when a test file dies on an uncaught
 * error before tap runs its teardowns (a failed top-level start, say), its
 * children would outlive it. On exit, each one still running gets `signal`
 * (SIGTERM for nginx, whose master then takes its workers down).
 */
import type { ChildProcess } from 'node:child_process'

const children = new Map<ChildProcess, NodeJS.Signals>()
let installed = false

export function reapOnExit (child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  children.set(child, signal)
  child.once('exit', () => children.delete(child))
  if (installed) return
  installed = true
  process.once('exit', () => {
    for (const [running, sendSignal] of children) {
      if (running.exitCode === null && running.signalCode === null) running.kill(sendSignal)
    }
  })
}
