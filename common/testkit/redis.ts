/**
 * A real redis-server for a test, on a free loopback port, stopped at
 * teardown. Nothing is persisted. `restart` brings it back, empty, on the
 * same port so clients can reconnect.
 */
import { connect } from 'node:net'
import { freePort, sleep, waitFor } from './ports.js'
import { spawnProcess, type RunningProcess, type Teardown } from './process.js'

export interface RedisServer {
  port: number
  url: string
  process: RunningProcess
  /** Sends one inline command and returns the raw reply (for tests that must not depend on a client library). */
  command: (...args: string[]) => Promise<string>
  stop: () => Promise<void>
  restart: () => Promise<void>
  /** SIGSTOP / SIGCONT: Redis frozen, sockets open. */
  freeze: () => void
  thaw: () => void
}

async function ping (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.setTimeout(500)
    socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => { socket.destroy(); resolve(false) })
    socket.once('connect', () => socket.write('PING\r\n'))
  })
}

function launch (t: Teardown, port: number, extraArgs: string[]): RunningProcess {
  return spawnProcess(t, 'redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--protected-mode', 'no', '--loglevel', 'warning', ...extraArgs
  ])
}

async function startOn (t: Teardown, port: number, extraArgs: string[]): Promise<RunningProcess | undefined> {
  const running = launch(t, port, extraArgs)
  const ready = await Promise.race([
    waitFor(async () => (await ping(port)) ? true : undefined, { timeoutMs: 5000, what: 'redis-server' }).catch(() => false),
    running.exited.then(() => false)
  ])
  if (ready) return running
  await running.stop('SIGKILL')
  return undefined
}

export async function startRedis (t: Teardown, extraArgs: string[] = []): Promise<RedisServer> {
  let port = 0
  let running: RunningProcess | undefined
  // Another process may take the port between freePort() and the bind: try again on a new one.
  for (let attempt = 0; attempt < 5 && running === undefined; attempt++) {
    port = await freePort()
    running = await startOn(t, port, extraArgs)
  }
  if (running === undefined) throw new Error('could not start redis-server')
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    process: running,
    command: async (...args) => await new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port })
      const encoded = `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`
      socket.once('data', (data) => { socket.destroy(); resolve(data.toString()) })
      socket.once('error', reject)
      socket.once('connect', () => socket.write(encoded))
    }),
    stop: async () => { await server.process.stop('SIGKILL') },
    restart: async () => {
      await server.process.stop('SIGKILL')
      for (let attempt = 0; attempt < 50; attempt++) {
        const next = await startOn(t, port, extraArgs)
        if (next !== undefined) { server.process = next; return }
        await sleep(100)
      }
      throw new Error(`could not restart redis-server on port ${port}`)
    },
    freeze: () => { server.process.child.kill('SIGSTOP') },
    thaw: () => { server.process.child.kill('SIGCONT') }
  }
  t.teardown(() => { server.thaw() })
  return server
}
