/**
 * A test upstream in its own process (node dist/common/testkit/sse-upstream.js),
 * for tests whose own process is busy with hundreds of clients: every POST
 * gets a server-sent event stream of SSE_EVENTS events, one every
 * SSE_INTERVAL_MS. It writes JSON lines on stdout: `listening` (with the
 * port), then `closed` for each stream (`request_id`, whether the gateway
 * aborted it, and `at`, Date.now() in this process). HOST and PORT as the
 * services (PORT=0 picks a free port); started with testkit's startService.
 * It lives here, not under a test folder: tap runs every file of a folder it
 * is given, and this one would listen forever.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

const events = Number(process.env.SSE_EVENTS ?? 100)
const intervalMs = Number(process.env.SSE_INTERVAL_MS ?? 200)
const log = (line: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(line)}\n`) }

const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    const requestId = req.headers['x-request-id']
    res.on('close', () => { log({ msg: 'closed', request_id: requestId, aborted: !res.writableFinished, at: Date.now() }) })
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    let sent = 0
    const next = (): void => {
      if (res.destroyed) return
      if (sent === events) {
        res.end()
        return
      }
      res.write(`data: {"delta":"${sent++}"}\n\n`)
      setTimeout(next, intervalMs)
    }
    next()
  })
})
server.keepAliveTimeout = 5000
server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  log({ msg: 'listening', port: (server.address() as AddressInfo).port })
})
process.on('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => { process.exit(0) })
})
