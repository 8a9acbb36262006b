/**
 * nginx in front, on loopback, with our production configuration
 * (nginx/nginx.conf) made to run here by deploy/test's own derivation
 * (deploy/test/helpers/nginx.ts: the substitution table that heads the file,
 * each string matched exactly as often as expected), plus one benchmark
 * change: `worker_processes auto` becomes one worker per server CPU, since
 * nginx is pinned to those CPUs and more workers than CPUs only adds
 * switching. Both upstreams (`gateway`, `api`) point at the process under
 * test.
 *
 * Started here rather than with deploy/test's startNginx: the benchmark pins
 * nginx with taskset from its first instruction and sends its stdout (the
 * JSON access log, as under Docker) to a file instead of through this process.
 */
import { chmodSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { freePort, sleep } from '../common/testkit/ports.js'
import { deriveNginxConf, nginxSubstitutions, SHIPPED_NGINX_CONF } from '../deploy/test/helpers/nginx.js'
import { childrenOf, pinnedCommand, spawnToFile, type Cleanup, type CpuPlan, type LoggedProcess } from './procs.js'

/** The shipped config for a loopback benchmark run, nginx in front of `upstream` (host:port). */
export function benchNginxConf (dir: string, port: number, upstream: string, workers: number): string {
  const substitutions = [
    ...nginxSubstitutions(dir, port, { gateway: upstream, api: upstream }),
    { from: 'worker_processes auto;', to: `worker_processes ${workers};`, times: 1 }
  ]
  return `# Derived from nginx/nginx.conf by bench/nginx.ts (deploy/test's substitutions) for a loopback benchmark.\n${deriveNginxConf(readFileSync(SHIPPED_NGINX_CONF, 'utf8'), substitutions)}`
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

export interface RunningNginx {
  url: string
  port: number
  master: LoggedProcess
  /** Master and workers, for CPU accounting. */
  pids: () => number[]
  source: string
  /** Empties its access logs (kept small over a long run; nginx opens them for appending). */
  truncateLogs: () => void
}

/**
 * Starts nginx in front of `upstream` (host:port); retries on a new port if
 * the bind fails. Its stdout (the JSON access log, as under Docker) and
 * stderr go to a file, not through this process.
 */
export async function startNginx (cleanup: Cleanup, plan: CpuPlan, dir: string, name: string, upstream: string): Promise<RunningNginx> {
  const workers = plan.pinned ? plan.servers.split(',').length : 1
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const confDir = join(dir, `${name}-${attempt}`)
    // The folders deploy/test's substitutions point into; workers run as nobody and must enter them.
    for (const sub of ['', 'cache', 'logs', 'stdout']) mkdirSync(join(confDir, sub), { recursive: true })
    for (const folder of [dir, confDir, join(confDir, 'cache'), join(confDir, 'logs'), join(confDir, 'stdout')]) chmodSync(folder, 0o755)
    const confFile = join(confDir, 'nginx.conf')
    writeFileSync(confFile, benchNginxConf(confDir, port, upstream, workers))
    const [command, args] = pinnedCommand(plan, plan.servers, 'nginx', ['-p', `${confDir}/`, '-e', 'stderr', '-c', confFile, '-g', 'daemon off;'])
    const master = spawnToFile(cleanup, command, args, {}, join(confDir, 'nginx.out'))
    let workerPids: number[] = []
    // nginx's master stops its workers on SIGTERM; a SIGKILLed master would leave them behind.
    cleanup.teardown(async () => {
      await master.stop('SIGTERM', 5000)
      for (const pid of workerPids) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
    })
    let exited = false
    void master.exited.then(() => { exited = true })
    for (let i = 0; i < 200 && !exited; i++) {
      if (await accepts(port)) {
        await sleep(50)
        workerPids = childrenOf(master.pid)
        for (const pid of workerPids) cleanup.track(pid)
        const truncateLogs = (): void => {
          for (const file of [master.logFile, join(confDir, 'stdout', 'access.log'), join(confDir, 'logs', 'access.json')]) {
            try { truncateSync(file, 0) } catch { /* not there */ }
          }
        }
        return { url: `http://127.0.0.1:${port}`, port, master, pids: () => [master.pid, ...workerPids], source: `nginx/nginx.conf via deploy/test's derivation, ${workers} worker${workers === 1 ? '' : 's'}`, truncateLogs }
      }
      await sleep(25)
    }
    await master.stop('SIGTERM', 2000)
    const output = readFileSync(master.logFile, 'utf8')
    if (!/Address already in use/.test(output)) throw new Error(`nginx (${name}) did not start:\n${output.slice(-3000)}`)
  }
  throw new Error(`nginx (${name}): no free port after 5 attempts`)
}
