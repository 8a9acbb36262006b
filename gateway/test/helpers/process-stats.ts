/**
 * What a running process holds, read from /proc (Linux): its RSS, its open
 * sockets, the TCP connections to or from a port, and a gauge from the
 * gateway's own /metrics. The reliability tests use these to show that
 * memory and sockets come back down after a fault.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { request } from 'node:http'

/** Resident set size of `pid`, in bytes. */
export function rssBytes (pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (match === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

/** The socket inodes `pid` has open. */
export function socketInodes (pid: number): Set<string> {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`)
      const match = /^socket:\[(\d+)\]$/.exec(target)
      if (match !== null) inodes.add(match[1]!)
    } catch {
      // Closed between the listing and the read.
    }
  }
  return inodes
}

/** TCP states by their /proc/net/tcp code. */
const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT',
  '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING'
}

export interface TcpConnection {
  localPort: number
  remotePort: number
  state: string
  inode: string
}

/** Every IPv4 and IPv6 TCP socket of this network namespace. */
export function tcpConnections (): TcpConnection[] {
  const connections: TcpConnection[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10) continue
      connections.push({
        localPort: parseInt(fields[1]!.split(':')[1]!, 16),
        remotePort: parseInt(fields[2]!.split(':')[1]!, 16),
        state: TCP_STATES[fields[3]!] ?? fields[3]!,
        inode: fields[9]!
      })
    }
  }
  return connections
}

/** Connections to or from `port` other than its listener and TIME_WAIT leftovers (which hold no resources of either process). */
export function liveConnectionsOf (port: number): TcpConnection[] {
  return tcpConnections().filter((connection) => (connection.localPort === port || connection.remotePort === port) &&
    connection.state !== 'LISTEN' && connection.state !== 'TIME_WAIT')
}

/** The sockets `pid` holds open to a server on `port`. */
export function socketsOfTo (pid: number, port: number): TcpConnection[] {
  const inodes = socketInodes(pid)
  return tcpConnections().filter((connection) => connection.remotePort === port && inodes.has(connection.inode))
}

/** One sample (no labels) of a Prometheus text exposition, e.g. `nodejs_heap_size_used_bytes`. */
export async function scrapeMetric (baseUrl: string, name: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    request(`${baseUrl}/metrics`, { agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve(body) })
      res.on('error', reject)
    }).on('error', reject).end()
  })
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)
  if (match === null) throw new Error(`no ${name} in /metrics`)
  return Number(match[1])
}

/** A connection to a child's inspector (started with `--inspect=127.0.0.1:0`), to measure its heap after a full GC. */
export interface Inspector {
  /** Runs a full garbage collection in the child, then returns its `process.memoryUsage()`. */
  memoryAfterGc: () => Promise<{ heapUsed: number; rss: number; external: number }>
  close: () => void
}

/** The node option that opens an inspector on a free loopback port (for `NODE_OPTIONS`). */
export const INSPECT_OPTION = '--inspect=127.0.0.1:0'

/** Connects to the inspector a child announced on stderr ("Debugger listening on ws://…"). */
export async function connectInspector (child: { stderr: string[] }): Promise<Inspector> {
  const { WebSocket } = await import('undici')
  const deadline = Date.now() + 10_000
  let url: string | undefined
  while (url === undefined) {
    url = child.stderr.map((line) => /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1]).find((found) => found !== undefined)
    if (url !== undefined) break
    if (Date.now() > deadline) throw new Error('no inspector URL on the child\'s stderr')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const socket = new WebSocket(url)
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => { resolve() })
    socket.addEventListener('error', () => { reject(new Error(`cannot connect to ${url}`)) })
  })
  let nextId = 0
  const pending = new Map<number, (result: any) => void>()
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown }
    if (message.id !== undefined) pending.get(message.id)?.(message.result)
  })
  const send = async (method: string, params: Record<string, unknown> = {}): Promise<any> => await new Promise((resolve) => {
    const id = ++nextId
    pending.set(id, (result) => { pending.delete(id); resolve(result) })
    socket.send(JSON.stringify({ id, method, params }))
  })
  return {
    memoryAfterGc: async () => {
      await send('HeapProfiler.collectGarbage')
      const { result } = await send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true }) as { result: { value: string } }
      return JSON.parse(result.value) as { heapUsed: number; rss: number; external: number }
    },
    close: () => { socket.close() }
  }
}
