/**
 * A stand-in for upstream-ai's `/health` on a fixed loopback port that a test
 * can stop and start again on the same port (the gateway keeps the URL it
 * started with), counting every health check it receives.
 */
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import { freePort, sleep } from '../../../common/testkit/ports.js'
import type { Teardown } from '../../../common/testkit/process.js'

export interface HealthUpstream {
  url: string
  port: number
  /** `GET /health` requests received so far (across restarts). */
  healthChecks: () => number
  stop: () => Promise<void>
  start: () => Promise<void>
}

async function listenOn (server: Server, port: number): Promise<boolean> {
  server.listen(port, '127.0.0.1')
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => { throw error })])
    return true
  } catch {
    return false
  }
}

export async function startHealthUpstream (t: Teardown): Promise<HealthUpstream> {
  let checks = 0
  let server: Server | undefined
  let port = 0
  const create = (): Server => createServer((req, res) => {
    if (req.url === '/health') checks++
    res.writeHead(req.url === '/health' ? 200 : 404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ status: 'healthy' }))
  })
  const start = async (): Promise<void> => {
    if (server !== undefined) return
    // The port was ours a moment ago (or picked as free): another process may hold it briefly, so retry.
    for (let attempt = 0; attempt < 50; attempt++) {
      const candidate = create()
      if (await listenOn(candidate, port)) {
        server = candidate
        return
      }
      await sleep(100)
    }
    throw new Error(`could not listen on port ${port}`)
  }
  const stop = async (): Promise<void> => {
    const running = server
    server = undefined
    if (running === undefined) return
    running.closeAllConnections()
    await new Promise<void>((resolve) => running.close(() => { resolve() }))
  }
  for (let attempt = 0; attempt < 5 && server === undefined; attempt++) {
    port = await freePort()
    const candidate = create()
    if (await listenOn(candidate, port)) server = candidate
  }
  if (server === undefined) throw new Error('could not start the health upstream')
  t.teardown(stop)
  return { url: `http://127.0.0.1:${port}`, port, healthChecks: () => checks, stop, start }
}
