/**
 * The shipped nginx/nginx.conf, run by the real nginx (Debian's) on loopback.
 *
 * The test copy differs from the shipped file by the substitutions of
 * `nginxSubstitutions` only (the same table heads nginx.conf): addresses of
 * the backends, the listen port, and paths into a temp folder. Each must
 * match exactly as often as expected, so a change to the shipped file that
 * would let the test run something else fails here instead. A test may
 * name more gateways (the scale-out of docs/deploy-vps.md, on the same
 * line) and add its own substitutions (`overrides`, e.g. a shorter read
 * timeout), held to the same exact-count rule and stated in that test. The static
 * root is a copy of the shipped nginx/html in that folder, so that nginx's
 * workers (`nobody`) can read it wherever the repository was cloned.
 */
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitFor } from '../../../common/testkit/ports.js'
import { ROOT, spawnProcess, type RunningProcess, type Teardown } from '../../../common/testkit/process.js'
import { reapOnExit } from './reaper.js'

export const SHIPPED_NGINX_CONF = join(ROOT, 'nginx/nginx.conf')
export const PLACEHOLDER_HTML = join(ROOT, 'nginx/html')
/** Caddy's fixed address on the `external` network (compose), the only proxy nginx trusts. */
export const SHIPPED_TLS_PROXY_ADDRESS = '172.30.80.10'

export interface NginxTargets {
  /** host:port of the gateway. */
  gateway: string
  /** host:port of more gateway replicas, listed after the first in `upstream gateway`. @default [] */
  moreGateways?: string[]
  /** Substitutions of the test's own, applied after the standard table. @default [] */
  overrides?: Substitution[]
  /** host:port of the app's api (a stub in tests). */
  api: string
  /** The address nginx trusts for X-Forwarded-For/-Proto (Caddy's); default 127.0.0.1. */
  trustedProxy?: string
  /**
   * Run nginx as this unprivileged uid/gid (through setpriv; the test must be root). Default: the
   * test's own user, which as root means master root and workers `nobody`, as in the image.
   */
  runAs?: { uid: number; gid: number }
}

export interface Substitution { from: string; to: string; times: number }

/** The only differences between the shipped nginx.conf and the one a test runs. */
export function nginxSubstitutions (dir: string, port: number, targets: NginxTargets): Substitution[] {
  const runningAsRoot = process.getuid?.() === 0 && targets.runAs === undefined
  return [
    // nginx honours `user` only as root (elsewhere it warns and ignores it); Debian has no `nginx` user.
    { from: 'user nginx;', to: runningAsRoot ? 'user nobody nogroup;' : 'user nginx;', times: 1 },
    { from: '/var/run/nginx.pid', to: join(dir, 'nginx.pid'), times: 1 },
    { from: '/var/cache/nginx/', to: `${join(dir, 'cache')}/`, times: 5 },
    // In the image /var/log/nginx/access.log is a link to stdout; here, a file (a test's stdout is a socket nginx cannot open).
    { from: '/var/log/nginx/', to: `${join(dir, 'stdout')}/`, times: 1 },
    { from: '/var/log/web/', to: `${join(dir, 'logs')}/`, times: 2 },
    { from: '/usr/share/nginx/html', to: join(dir, 'html'), times: 1 },
    { from: 'listen 80;', to: `listen 127.0.0.1:${port};`, times: 1 },
    // More replicas go on the same line: the test copy keeps the shipped file's line numbers.
    { from: 'server gateway:8080;', to: [targets.gateway, ...(targets.moreGateways ?? [])].map((address) => `server ${address};`).join(' '), times: 1 },
    { from: 'server api:8000;', to: `server ${targets.api};`, times: 1 },
    { from: SHIPPED_TLS_PROXY_ADDRESS, to: targets.trustedProxy ?? '127.0.0.1', times: 2 }
  ]
}

/** Applies the substitutions to directive lines (comment lines, which quote the same strings, stay). */
export function deriveNginxConf (shipped: string, substitutions: Substitution[]): string {
  const lines = shipped.split('\n')
  const isComment = (line: string): boolean => line.trimStart().startsWith('#')
  for (const { from, to, times } of substitutions) {
    let found = 0
    for (const [index, line] of lines.entries()) {
      if (isComment(line) || !line.includes(from)) continue
      found += line.split(from).length - 1
      lines[index] = line.split(from).join(to)
    }
    if (found !== times) throw new Error(`nginx.conf: expected "${from}" ${times} time(s), found ${found}: update deploy/test/helpers/nginx.ts with the shipped file`)
  }
  return lines.join('\n')
}

export interface NginxInstance {
  port: number
  url: string
  dir: string
  confPath: string
  process: RunningProcess
  /** Lines of the JSON access log file (the web-logs volume's access.json), parsed. */
  accessLog: () => Array<Record<string, unknown>>
  /** Lines of the access log the image sends to stdout (`docker compose logs web`), parsed. */
  stdoutLog: () => Array<Record<string, unknown>>
  /** Everything nginx wrote as errors: the web-logs volume's error.log, stderr (`docker compose logs web`) and the start-up log. */
  errorLog: () => string
}

/** A temp folder nginx's workers (nobody, when the test runs as root) can enter, owned by `runAs` if given. */
function nginxDir (t: Teardown, runAs: NginxTargets['runAs']): string {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-nginx-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  chmodSync(dir, 0o755)
  for (const sub of ['logs', 'stdout', 'cache']) {
    mkdirSync(join(dir, sub))
    if (runAs !== undefined) chownSync(join(dir, sub), runAs.uid, runAs.gid)
  }
  if (runAs !== undefined) chownSync(dir, runAs.uid, runAs.gid)
  cpSync(PLACEHOLDER_HTML, join(dir, 'html'), { recursive: true })
  return dir
}

/** nginx itself, or nginx through setpriv as an unprivileged user. */
function nginxCommand (runAs: NginxTargets['runAs'], args: string[]): [string, string[]] {
  if (runAs === undefined) return ['nginx', args]
  return ['setpriv', [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--clear-groups', 'nginx', ...args]]
}

export function writeTestConf (dir: string, port: number, targets: NginxTargets): string {
  const confPath = join(dir, 'nginx.conf')
  writeFileSync(confPath, deriveNginxConf(readFileSync(SHIPPED_NGINX_CONF, 'utf8'), [...nginxSubstitutions(dir, port, targets), ...(targets.overrides ?? [])]))
  return confPath
}

function nginxArgs (dir: string, confPath: string): string[] {
  // -e: the error log before the configuration is read (Debian's default is stderr; explicit all the same).
  return ['-p', `${dir}/`, '-c', confPath, '-e', join(dir, 'logs', 'startup-error.log')]
}

/** `nginx -t` on the test copy: exit code and what nginx said. */
export async function nginxConfigTest (t: Teardown, targets: NginxTargets): Promise<{ code: number | null; output: string; confPath: string }> {
  const dir = nginxDir(t, targets.runAs)
  const confPath = writeTestConf(dir, await freePort(), targets)
  const running = spawnProcess(t, ...nginxCommand(targets.runAs, ['-t', ...nginxArgs(dir, confPath)]))
  const { code } = await running.exited
  return { code, output: [...running.stdout, ...running.stderr].join('\n'), confPath }
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

/** Starts nginx in the foreground on a free loopback port (a new one if another process took it first). */
export async function startNginx (t: Teardown, targets: NginxTargets): Promise<NginxInstance> {
  const dir = nginxDir(t, targets.runAs)
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const confPath = writeTestConf(dir, port, targets)
    const running = spawnProcess(t, ...nginxCommand(targets.runAs, [...nginxArgs(dir, confPath), '-g', 'daemon off;']))
    // SIGTERM is nginx's fast shutdown: master and workers go (SIGKILL on the master alone would orphan workers).
    t.teardown(async () => { await running.stop('SIGTERM', 5000) })
    reapOnExit(running.child, 'SIGTERM')
    const started = await Promise.race([
      waitFor(async () => (await accepts(port)) ? true : undefined, { timeoutMs: 5000, what: 'nginx to listen' }),
      running.exited.then(() => false)
    ])
    if (started) {
      return {
        port,
        url: `http://127.0.0.1:${port}`,
        dir,
        confPath,
        process: running,
        accessLog: () => jsonLines(join(dir, 'logs', 'access.json')),
        stdoutLog: () => jsonLines(join(dir, 'stdout', 'access.log')),
        errorLog: () => [readFileSafe(join(dir, 'logs', 'error.log')), ...running.stderr, readFileSafe(join(dir, 'logs', 'startup-error.log'))].join('\n')
      }
    }
    const said = [...running.stderr, readFileSafe(join(dir, 'logs', 'startup-error.log'))].join('\n')
    if (!/Address already in use/.test(said)) throw new Error(`nginx did not start:\n${said}`)
  }
  throw new Error('nginx: no free port after 5 attempts')
}

function jsonLines (path: string): Array<Record<string, unknown>> {
  return readFileSafe(path).split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>)
}

function readFileSafe (path: string): string {
  try { return readFileSync(path, 'utf8') } catch { return '' }
}
