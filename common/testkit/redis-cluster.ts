/**
 * A real Redis Cluster for a test, on loopback: `masters × (1 + replicas)`
 * redis-server processes started with `--cluster-enabled yes` (each on a
 * free port, its nodes file in a temporary directory), joined by
 * `redis-cli --cluster create`, and waited on until every node reports
 * `cluster_state:ok` (and every replica on `master_link_status:up`), with
 * `cluster-replica-validity-factor 0` so that a replica always takes over a
 * failed master. Stopped and deleted at teardown. Each node is a
 * RedisServer (./redis.ts): `stop` kills it, `restart` brings it back on the
 * same port with the same nodes file, so it rejoins the cluster.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { waitFor } from './ports.js'
import type { Teardown } from './process.js'
import { startRedis, type RedisServer } from './redis.js'

const run = promisify(execFile)

export interface RedisClusterOptions {
  /** @default 3 */
  masters?: number
  /** Replicas per master. @default 0 */
  replicas?: number
  /** `cluster-node-timeout`: how long a node may be unreachable before it is failed (and a replica promoted). @default 1000 */
  nodeTimeoutMs?: number
}

export interface ClusterNodeInfo {
  id: string
  /** `127.0.0.1:<port>` */
  address: string
  port: number
  role: 'master' | 'replica'
  /** For a replica, its master's id. */
  masterId: string | undefined
  /** Slot ranges served, e.g. [[0, 5460]] (masters only). */
  slots: Array<[number, number]>
  /** Flags such as `fail`, `fail?`, `myself`. */
  flags: string[]
}

export interface RedisCluster {
  /** Every node, in start order. */
  nodes: RedisServer[]
  /** `127.0.0.1:p1,127.0.0.1:p2,…`: REDIS_CLUSTER_NODES. */
  seeds: string
  /** Runs `redis-cli -p <port> <args…>` and returns its output (raw, no type prefixes). */
  cli: (port: number, ...args: string[]) => Promise<string>
  /** CLUSTER NODES as seen by a node that is up. */
  topology: () => Promise<ClusterNodeInfo[]>
  /** The node (RedisServer) serving `key`'s slot as master now. */
  masterFor: (key: string) => Promise<RedisServer>
  /** Waits until every running node reports `cluster_state:ok`, every replica has synced, and live masters serve all 16384 slots. */
  waitUntilOk: (timeoutMs?: number) => Promise<void>
}

export async function startRedisCluster (t: Teardown, options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3
  const replicas = options.replicas ?? 0
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000
  const dir = mkdtempSync(join(tmpdir(), 'ai-gateway-redis-cluster-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

  const nodes = await Promise.all(Array.from({ length: masters * (1 + replicas) }, async (_, index) => await startRedis(t, [
    '--cluster-enabled', 'yes',
    '--cluster-config-file', join(dir, `nodes-${index}.conf`),
    '--cluster-node-timeout', String(nodeTimeoutMs),
    // A replica may take over however long it has been cut off from its master (the default refuses after a while).
    '--cluster-replica-validity-factor', '0',
    '--dir', dir
  ])))
  const seeds = nodes.map((node) => `127.0.0.1:${node.port}`).join(',')

  const cli = async (port: number, ...args: string[]): Promise<string> =>
    (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 20_000 })).stdout

  await cli(nodes[0]!.port, '--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`),
    '--cluster-replicas', String(replicas), '--cluster-yes')

  const alive = (node: RedisServer): boolean => node.process.child.exitCode === null && node.process.child.signalCode === null

  const topology = async (): Promise<ClusterNodeInfo[]> => {
    const from = nodes.find(alive)
    if (from === undefined) throw new Error('no cluster node is running')
    return (await cli(from.port, 'CLUSTER', 'NODES')).split('\n').filter((line) => line.trim() !== '').map((line) => {
      const [id, address, flags, master, , , , , ...slots] = line.trim().split(' ')
      const hostPort = address!.split('@')[0]!
      const flagList = flags!.split(',')
      return {
        id: id!,
        address: hostPort,
        port: Number(hostPort.split(':').pop()),
        role: flagList.includes('master') ? 'master' : 'replica',
        masterId: master === '-' ? undefined : master,
        slots: slots.filter((range) => /^\d/.test(range)).map((range): [number, number] => {
          const [first, last] = range.split('-').map(Number)
          return [first!, last ?? first!]
        }),
        flags: flagList
      }
    })
  }

  const waitUntilOk = async (timeoutMs = 20_000): Promise<void> => {
    await waitFor(async () => {
      for (const node of nodes.filter(alive)) {
        const info = await cli(node.port, 'CLUSTER', 'INFO').catch(() => '')
        if (!info.includes('cluster_state:ok')) return undefined
        // A replica counts once it has synced: then a failover keeps the data.
        const replication = await cli(node.port, 'INFO', 'replication').catch(() => '')
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return undefined
      }
      const served = (await topology()).filter((node) => node.role === 'master' && !node.flags.some((flag) => flag.startsWith('fail')))
        .reduce((total, node) => total + node.slots.reduce((sum, [first, last]) => sum + last - first + 1, 0), 0)
      return served === 16384 ? true : undefined
    }, { timeoutMs, intervalMs: 100, what: 'cluster_state:ok on every node' })
  }

  const masterFor = async (key: string): Promise<RedisServer> => {
    const from = nodes.find(alive)!
    const slot = Number((await cli(from.port, 'CLUSTER', 'KEYSLOT', key)).trim())
    const owner = (await topology()).find((node) => node.role === 'master' && !node.flags.includes('fail') &&
      node.slots.some(([first, last]) => slot >= first && slot <= last))
    const server = nodes.find((node) => node.port === owner?.port)
    if (server === undefined) throw new Error(`no master serves slot ${slot}`)
    return server
  }

  await waitUntilOk()
  return { nodes, seeds, cli, topology, masterFor, waitUntilOk }
}
