/**
 * A real Redis Sentinel group for a test, on loopback: a master and a
 * replica (RedisServer, ./redis.ts) and one sentinel (`redis-server
 * <conf> --sentinel`, quorum 1) that fails the master over to the replica
 * `downAfterMs` after the master stops answering. Each on a free port, the
 * sentinel's config (which it rewrites) in a temporary directory; stopped and
 * deleted at teardown.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, waitFor } from './ports.js'
import { spawnProcess, type RunningProcess, type Teardown } from './process.js'
import { startRedis, type RedisServer } from './redis.js'

const run = promisify(execFile)

export interface RedisSentinelGroup {
  /** The master at start. */
  master: RedisServer
  /** Its replica, promoted when the master fails. */
  replica: RedisServer
  sentinel: RunningProcess
  /** `127.0.0.1:<port>`: REDIS_SENTINELS. */
  sentinels: string
  /** REDIS_SENTINEL_MASTER. */
  masterName: string
  /** The port of the master the sentinel names now. */
  currentMasterPort: () => Promise<number>
}

export async function startRedisSentinelGroup (t: Teardown, options: { downAfterMs?: number; masterName?: string } = {}): Promise<RedisSentinelGroup> {
  const masterName = options.masterName ?? 'gateway-master'
  const dir = mkdtempSync(join(tmpdir(), 'redis-sentinel-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  // The replica's full sync goes through an RDB file: in the temporary directory, not the working one.
  const master = await startRedis(t, ['--dir', dir, '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0'])
  const replica = await startRedis(t, ['--dir', dir, '--replicaof', '127.0.0.1', String(master.port)])
  await waitFor(async () => (await replica.command('INFO', 'replication')).includes('master_link_status:up') ? true : undefined,
    { timeoutMs: 10_000, what: 'the replica in sync' })

  const port = await freePort()
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, [
    `port ${port}`,
    'bind 127.0.0.1',
    'protected-mode no',
    `dir ${dir}`,
    `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`,
    `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1000}`,
    `sentinel failover-timeout ${masterName} 5000`,
    ''
  ].join('\n'))
  const sentinel = spawnProcess(t, 'redis-server', [conf, '--sentinel', '--loglevel', 'warning'])
  t.teardown(async () => { await sentinel.stop('SIGKILL') })

  const cli = async (...args: string[]): Promise<string> => (await run('redis-cli', ['-p', String(port), ...args])).stdout
  const currentMasterPort = async (): Promise<number> => {
    const [, masterPort] = (await cli('SENTINEL', 'get-master-addr-by-name', masterName)).trim().split('\n')
    return Number(masterPort)
  }
  // Ready once it has learnt the replica from the master (INFO), so a failover has somewhere to go.
  await waitFor(async () => {
    try {
      return (await cli('SENTINEL', 'replicas', masterName)).includes(String(replica.port)) ? true : undefined
    } catch {
      return undefined
    }
  }, { timeoutMs: 15_000, intervalMs: 100, what: 'the sentinel to know master and replica' })
  return { master, replica, sentinel, sentinels: `127.0.0.1:${port}`, masterName, currentMasterPort }
}
