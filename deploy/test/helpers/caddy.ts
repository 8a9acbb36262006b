/**
 * The shipped compose/Caddyfile, run by the real caddy (Debian's) on
 * loopback with its own local CA in a temp folder.
 *
 * The Caddyfile's site is set through its environment placeholders, as
 * compose sets them (SITE_ADDRESS=localhost, CADDY_TLS=internal,
 * WEB_UPSTREAM=<the test's nginx>); the test copy only adds, inside the
 * global options block, the four options in CADDY_TEST_OPTIONS, so that
 * Caddy binds loopback ports the test chose instead of 80, 443 and 2019.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { freePort, waitFor } from '../../../common/testkit/ports.js'
import { ROOT, spawnProcess, type RunningProcess, type Teardown } from '../../../common/testkit/process.js'
import { reapOnExit } from './reaper.js'

export const SHIPPED_CADDYFILE = join(ROOT, 'compose/Caddyfile')

export interface CaddyPorts { httpPort: number; httpsPort: number; adminPort: number }

export const CADDY_TEST_OPTIONS = (ports: CaddyPorts): string[] => [
  'default_bind 127.0.0.1',
  `http_port ${ports.httpPort}`,
  `https_port ${ports.httpsPort}`,
  `admin localhost:${ports.adminPort}`
]

/** The shipped Caddyfile with the test's options added at the top of its global options block. */
export function deriveCaddyfile (shipped: string, ports: CaddyPorts): string {
  const lines = shipped.split('\n')
  const open = lines.findIndex((line) => line === '{')
  if (open === -1) throw new Error('compose/Caddyfile: no global options block (a line that is exactly "{")')
  lines.splice(open + 1, 0, ...CADDY_TEST_OPTIONS(ports).map((option) => `\t${option}`))
  return lines.join('\n')
}

export interface CaddyInstance extends CaddyPorts {
  /** https://localhost:<httpsPort> (connect to 127.0.0.1). */
  url: string
  /** Caddy's local root certificate, as `curl --cacert` takes it. */
  rootCertPath: string
  rootCert: Buffer
  dir: string
  env: Record<string, string>
  process: RunningProcess
}

async function handshakes (port: number, ca: Buffer): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca })
    socket.once('secureConnect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}

/** Starts caddy in front of `upstream` (host:port), retrying on new ports if one was taken. */
export async function startCaddy (t: Teardown, upstream: string): Promise<CaddyInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-caddy-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // Caddy keeps its CA and certificates under XDG_DATA_HOME (and HOME): here, never in the user's home.
  const env = {
    SITE_ADDRESS: 'localhost',
    CADDY_TLS: 'internal',
    WEB_UPSTREAM: upstream,
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config')
  }
  mkdirSync(env.XDG_DATA_HOME)
  mkdirSync(env.XDG_CONFIG_HOME)
  const rootCertPath = join(env.XDG_DATA_HOME, 'caddy', 'pki', 'authorities', 'local', 'root.crt')
  for (let attempt = 0; attempt < 5; attempt++) {
    const ports = { httpPort: await freePort(), httpsPort: await freePort(), adminPort: await freePort() }
    const config = join(dir, 'Caddyfile')
    writeFileSync(config, deriveCaddyfile(readFileSync(SHIPPED_CADDYFILE, 'utf8'), ports))
    const running = spawnProcess(t, 'caddy', ['run', '--config', config, '--adapter', 'caddyfile'], { env, cwd: dir })
    t.teardown(async () => { await running.stop('SIGTERM', 5000) })
    reapOnExit(running.child)
    const ready = await Promise.race([
      waitFor(async () => existsSync(rootCertPath) && await handshakes(ports.httpsPort, readFileSync(rootCertPath)) ? true : undefined,
        { timeoutMs: 15_000, intervalMs: 50, what: 'caddy to serve HTTPS with its local CA' }),
      running.exited.then(() => false)
    ])
    if (ready) {
      return { ...ports, url: `https://localhost:${ports.httpsPort}`, rootCertPath, rootCert: readFileSync(rootCertPath), dir, env, process: running }
    }
    const said = running.stderr.join('\n')
    if (!/address already in use/i.test(said)) throw new Error(`caddy did not start:\n${said}`)
  }
  throw new Error('caddy: no free ports after 5 attempts')
}
