/**
 * A throwaway PostgreSQL for a test: `initdb` into a temporary directory and
 * `postgres` on a free loopback port (trust auth, user `postgres`, no fsync),
 * stopped and deleted at teardown. It never touches a PostgreSQL the
 * machine may already run. `stop` and `start` bring it down and back up on
 * the same port and data directory.
 *
 * The binaries come from /usr/lib/postgresql/<version>/bin (Debian's
 * `postgresql` package, installed by scripts/install-test-deps.sh) or from
 * PATH. PostgreSQL refuses to run as root: under root both programs run as
 * the `postgres` user (or `nobody`) through `setpriv`, which execs in place,
 * so the child process is postgres itself and signals reach it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { freePort, sleep } from './ports.js'
import type { Teardown } from './process.js'

export interface PostgresServer {
  port: number
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string
  /** Fast shutdown (SIGINT: clients are disconnected); resolves once the server has exited. */
  stop: () => Promise<void>
  /** Starts it again on the same port and data directory. */
  start: () => Promise<void>
  /** Server log lines (stderr), for failure messages. */
  log: string[]
}

/** The directory holding initdb and postgres, or undefined when PostgreSQL is not installed. */
export function postgresBinDir (): string | undefined {
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))
    for (const version of versions) {
      const dir = join(root, version, 'bin')
      if (existsSync(join(dir, 'postgres')) && existsSync(join(dir, 'initdb'))) return dir
    }
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    if (existsSync(join(dir, 'postgres')) && existsSync(join(dir, 'initdb'))) return dir
  } catch {
    // No pg_config on PATH.
  }
  return undefined
}

/** Under root: the user PostgreSQL runs as, with its ids. */
function runAs (): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim())
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim())
      return { name, uid, gid }
    } catch {
      // No such user; try the next.
    }
  }
  throw new Error('running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as')
}

function command (user: ReturnType<typeof runAs>, program: string, args: string[]): [string, string[]] {
  return user === undefined
    ? [program, args]
    : ['setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', program, ...args]]
}

async function accepts (url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 500 })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/** Starts a throwaway PostgreSQL, or returns undefined when the binaries are missing (the caller skips). */
export async function startPostgres (t: Teardown): Promise<PostgresServer | undefined> {
  const bin = postgresBinDir()
  if (bin === undefined) return undefined
  const user = runAs()
  const root = mkdtempSync(join(tmpdir(), 'ai-gateway-pg-'))
  if (user !== undefined) chownSync(root, user.uid, user.gid)
  const data = join(root, 'data')
  let child: ChildProcess | undefined
  const log: string[] = []

  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = once(running, 'exit')
    running.kill('SIGINT')
    const timer = setTimeout(() => running.kill('SIGKILL'), 5000)
    try { await exited } finally { clearTimeout(timer) }
  }
  t.teardown(async () => {
    await stop().catch(() => {})
    rmSync(root, { recursive: true, force: true })
  })

  const [initdb, initdbArgs] = command(user, join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--no-instructions'])
  execFileSync(initdb, initdbArgs, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] })

  /** One attempt on `port`: true once it accepts queries, false if it exited (port taken) or never came up. */
  const launch = async (port: number): Promise<boolean> => {
    const [program, args] = command(user, join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', root,
      '-c', 'fsync=off', '-c', 'full_page_writes=off', '-c', 'synchronous_commit=off', '-c', 'max_connections=20'
    ])
    const started = spawn(program, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] })
    started.stderr!.setEncoding('utf8').on('data', (text: string) => { log.push(...text.split('\n').filter((line) => line !== '')) })
    let exited = false
    started.once('exit', () => { exited = true })
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`
    const deadline = Date.now() + 15_000
    while (!exited && Date.now() < deadline) {
      if (await accepts(url)) {
        child = started
        return true
      }
      await sleep(50)
    }
    if (!exited) {
      started.kill('SIGKILL')
      await once(started, 'exit')
    }
    return false
  }

  let port = 0
  let up = false
  for (let attempt = 0; attempt < 5 && !up; attempt++) {
    port = await freePort()
    up = await launch(port)
  }
  if (!up) throw new Error(`could not start PostgreSQL:\n${log.join('\n')}`)

  const server: PostgresServer = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    log,
    stop,
    start: async () => {
      if (child !== undefined) return
      // The port was ours a moment ago; another process may hold it briefly, so retry.
      for (let attempt = 0; attempt < 50; attempt++) {
        if (await launch(port)) return
        await sleep(100)
      }
      throw new Error(`could not restart PostgreSQL on port ${port}:\n${log.join('\n')}`)
    }
  }
  return server
}
