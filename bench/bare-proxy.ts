/**
 * The yardstick for the gateway: a bare http-proxy-3 pass-through, with the
 * gateway's upstream pool settings (keep-alive node:http Agent, 256 sockets,
 * 4 s idle) and nothing else — no identity, no limiter, no body read, no
 * log line. What the gateway costs above this is the cost of its features.
 *
 * BENCH_TARGET is the upstream base URL; HOST/PORT as the services.
 */
import { Agent, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createProxyServer } from 'http-proxy-3'

const target = process.env.BENCH_TARGET
if (target === undefined) {
  process.stderr.write('bare-proxy: BENCH_TARGET is required\n')
  process.exit(2)
}

const agent = new Agent({ keepAlive: true, maxSockets: 256, timeout: 4000 })
const proxy = createProxyServer({ target, agent })
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'application/json' })
    res.end('{"error":{"type":"UPSTREAM_UNAVAILABLE"}}')
  } else {
    res.destroy()
  }
})

const server = createServer((req, res) => { proxy.web(req, res) })
server.keepAliveTimeout = 65_000
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'listening', service: 'bench-bare-proxy', address, port })}\n`)
})
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    server.closeAllConnections()
    server.close(() => { agent.destroy(); process.exit(0) })
  })
}
