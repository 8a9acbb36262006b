/**
 * The production path on loopback: nginx (the shipped config) in front of
 * the built gateway and upstream-ai (mock provider) and a stub of the app's
 * api, each started by the test and stopped at its end. The services run
 * with ENVIRONMENT=production, as compose starts them.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { promisify } from 'node:util'
import { ROOT, startService, type RunningService, type Teardown } from '../../../common/testkit/process.js'
import { startNginx, type NginxInstance } from './nginx.js'
import { reapOnExit } from './reaper.js'

const run = promisify(execFile)

export interface StubApiRequest { method: string; url: string; headers: IncomingHttpHeaders; bodyBytes: number }

export interface StubApi {
  port: number
  requests: StubApiRequest[]
}

/**
 * The app's api as nginx sees it: answers any path with JSON saying what it
 * received (method, path, headers), padded past nginx's gzip_min_length.
 */
export async function startStubApi (t: Teardown): Promise<StubApi> {
  const requests: StubApiRequest[] = []
  const server = createServer((req, res) => {
    let bodyBytes = 0
    req.on('data', (chunk: Buffer) => { bodyBytes += chunk.length })
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes }
      requests.push(seen)
      const body = JSON.stringify({ service: 'stub-api', ...seen, padding: 'x'.repeat(4096) })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-powered-by': 'stub' })
      res.end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const address = server.address()
  if (address === null || typeof address !== 'object') throw new Error('stub api: no port')
  return { port: address.port, requests }
}

export interface Stack {
  nginx: NginxInstance
  gateway: RunningService
  upstream: RunningService
  api: StubApi
  /** A token for `user` signed with the gateway's secret, by the tool docs/deploy-vps.md uses. */
  token: (user: string) => Promise<string>
}

export interface StackOptions {
  gatewayEnv?: Record<string, string>
  upstreamEnv?: Record<string, string>
}

export async function startStack (t: Teardown, options: StackOptions = {}): Promise<Stack> {
  const jwtSecret = randomBytes(48).toString('base64')
  const upstream = await startService(t, 'dist/upstream-ai/src/main.js', {
    ENVIRONMENT: 'production', AI_PROVIDER: 'mock', ...options.upstreamEnv
  })
  reapOnExit(upstream.child)
  const gatewayEnv = { ENVIRONMENT: 'production', JWT_SECRET_KEY: jwtSecret, AI_UPSTREAM_URL: upstream.url, ...options.gatewayEnv }
  const gateway = await startService(t, 'dist/gateway/src/main.js', gatewayEnv)
  reapOnExit(gateway.child)
  const api = await startStubApi(t)
  const nginx = await startNginx(t, { gateway: `127.0.0.1:${gateway.port}`, api: `127.0.0.1:${api.port}` })
  const token = async (user: string): Promise<string> => {
    const { stdout } = await run(process.execPath, ['dist/gateway/src/tools/dev-token.js', user], { cwd: ROOT, env: { ...process.env, ...gatewayEnv } })
    return stdout.trim()
  }
  return { nginx, gateway, upstream, api, token }
}

/** A generate body of exactly `size` bytes (padding inside `input`), valid for the mock provider. */
export function generateBody (size: number): string {
  const empty = JSON.stringify({ use_case: 'horoscope_daily', input: { sign: 'leo', date: '2026-11-26', note: '' } })
  if (size < empty.length) throw new Error(`a generate body is at least ${empty.length} bytes`)
  return JSON.stringify({ use_case: 'horoscope_daily', input: { sign: 'leo', date: '2026-11-26', note: 'x'.repeat(size - empty.length) } })
}
