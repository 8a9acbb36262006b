/**
 * The soak (`make soak`; not part of `npm test`): the built gateway, with
 * Redis (rate limiter and cache) in front of upstream-ai (mock provider),
 * under steady load for SOAK_SECONDS (900) with client aborts mixed in:
 * cache hits and misses, proxied generates, whole chat streams, streams the
 * client kills after their first event, and non-streaming chats the client
 * abandons while they wait. Every SOAK_SAMPLE_SECONDS (30) it reads the
 * gateway's heap after a full GC (through its inspector) and its RSS, and
 * at the end it writes them into docs/reliability.md (between the
 * `soak:begin` / `soak:end` markers) and prints the same table.
 *
 * It fails (exit 1) when any answer is other than expected (a 5xx, a
 * transport error other than the aborts it caused itself) or when the heap
 * after GC grew by more than SOAK_MAX_HEAP_GROWTH_MB (8) from the first
 * sample after the warm-up to the last.
 *
 *   make soak                     # 15 minutes
 *   SOAK_SECONDS=60 make soak     # a short check that it works
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { request, Agent } from 'node:http'
import { startRedis } from '../../../common/testkit/redis.js'
import { ROOT, type Teardown } from '../../../common/testkit/process.js'
import { startUpstreamAi } from '../../../upstream-ai/test/helpers/upstream.js'
import { startGateway, token } from '../helpers/gateway.js'
import { connectInspector, INSPECT_OPTION, rssBytes } from '../helpers/process-stats.js'

const envNumber = (name: string, fallback: number): number => {
  const raw = process.env[name]?.trim()
  const value = raw === undefined || raw === '' ? fallback : Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: expected a positive number`)
  return value
}

const SECONDS = envNumber('SOAK_SECONDS', 900)
const SAMPLE_SECONDS = envNumber('SOAK_SAMPLE_SECONDS', Math.min(30, SECONDS / 6))
const CLIENTS = envNumber('SOAK_CLIENTS', 16)
const MAX_HEAP_GROWTH_MB = envNumber('SOAK_MAX_HEAP_GROWTH_MB', 8)
const USERS = 200
const MB = 1024 * 1024
const DOC = join(ROOT, 'docs/reliability.md')
const log = (line: string): void => { process.stderr.write(`soak: ${line}\n`) }

type Kind = 'cache-hit' | 'cache-miss' | 'proxy' | 'stream' | 'stream-abort' | 'wait-abort'
/** The mix, in shares of requests. */
const MIX: Array<[Kind, number]> = [['cache-hit', 30], ['cache-miss', 15], ['proxy', 20], ['stream', 15], ['stream-abort', 15], ['wait-abort', 5]]

interface Sample { at: number; requests: number; heapMb: number; rssMb: number }

async function main (): Promise<number> {
  // Not a test: tap runs every file of a folder it is given (`npx tap gateway/test`), and this one takes 15 minutes.
  if (process.env.TAP === '1') return 0
  const cleanups: Array<() => unknown> = []
  const t: Teardown = { teardown: (fn) => { cleanups.push(fn) } }
  const cleanup = async (): Promise<void> => { for (const fn of cleanups.reverse()) await fn() }
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
  try {
    const redis = await startRedis(t)
    const upstreamAi = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '20' })
    const gateway = await startGateway(t, {
      AI_UPSTREAM_URL: upstreamAi.url,
      REDIS_URL: redis.url,
      AI_ENGINE_CACHE_ENABLED: 'true',
      AI_ENGINE_RATE_LIMIT_PER_MIN: '10000',
      NODE_OPTIONS: INSPECT_OPTION
    })
    // Their completion lines are read by nobody here: keep only the last few thousand in this process's memory.
    for (const service of [gateway, upstreamAi]) {
      service.child.stdout?.on('data', () => { if (service.stdout.length > 5000) service.stdout.splice(0, service.stdout.length - 1000) })
    }
    const inspector = await connectInspector(gateway)
    t.teardown(() => { inspector.close() })
    const pid = gateway.child.pid!
    const tokens = await Promise.all(Array.from({ length: USERS }, async (_, i) => await token({ sub: `soak-user-${i}`, expiresIn: SECONDS + 3600 })))
    log(`gateway pid ${pid}; ${CLIENTS} clients for ${SECONDS} s; samples every ${SAMPLE_SECONDS} s`)

    const counts = new Map<string, number>()
    const count = (key: string): void => { counts.set(key, (counts.get(key) ?? 0) + 1) }
    const unexpected: string[] = []
    let requests = 0
    let misses = 0
    const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS })
    const pick = (): Kind => {
      let roll = Math.random() * MIX.reduce((sum, [, share]) => sum + share, 0)
      for (const [kind, share] of MIX) if ((roll -= share) < 0) return kind
      return 'proxy'
    }
    const once = async (kind: Kind): Promise<void> => {
      const auth = `Bearer ${tokens[Math.floor(Math.random() * USERS)]!}`
      const chat = kind === 'stream' || kind === 'stream-abort' || kind === 'wait-abort'
      const body = chat
        ? { messages: [{ role: 'user', content: 'How is the week ahead?' }], ...(kind === 'wait-abort' ? { stream: false } : {}) }
        : { use_case: 'horoscope_daily', input: { sign: kind === 'cache-hit' ? `hit-${Math.floor(Math.random() * 20)}` : `miss-${++misses}` }, ...(kind === 'proxy' ? { options: { temperature: 0.7 } } : {}) }
      const payload = JSON.stringify(body)
      await new Promise<void>((resolve) => {
        // Aborting clients leave on their own connection, so the pool's keep-alive sockets stay healthy.
        const req = request(`${gateway.url}/v1/ai/${chat ? 'chat' : 'generate'}`, {
          method: 'POST',
          agent: kind === 'stream-abort' || kind === 'wait-abort' ? false : agent,
          headers: { authorization: auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
        }, (res) => {
          const status = res.statusCode ?? 0
          if (kind === 'stream-abort') {
            res.once('data', () => { count(`${kind} ${status}`); req.destroy(); resolve() })
          } else {
            res.resume()
            res.on('end', () => {
              count(`${kind} ${status}`)
              if (status !== 200) unexpected.push(`${kind}: HTTP ${status}`)
              resolve()
            })
          }
          res.on('error', () => {})
        })
        req.on('error', (error) => {
          if (kind !== 'stream-abort' && kind !== 'wait-abort') unexpected.push(`${kind}: ${error.message}`)
          resolve()
        })
        req.end(payload)
        if (kind === 'wait-abort') setTimeout(() => { count(`${kind} aborted`); req.destroy(); resolve() }, 5)
      })
      requests++
    }

    const startedAt = Date.now()
    const endAt = startedAt + SECONDS * 1000
    const clients = Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < endAt) {
        await once(pick())
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })
    const samples: Sample[] = []
    const sample = async (): Promise<void> => {
      const { heapUsed } = await inspector.memoryAfterGc()
      const entry = { at: Math.round((Date.now() - startedAt) / 1000), requests, heapMb: heapUsed / MB, rssMb: rssBytes(pid) / MB }
      samples.push(entry)
      log(`${entry.at} s: ${entry.requests} requests, heap after GC ${entry.heapMb.toFixed(1)} MB, RSS ${entry.rssMb.toFixed(1)} MB`)
    }
    const sampler = setInterval(() => { void sample() }, SAMPLE_SECONDS * 1000)
    await Promise.all(clients)
    clearInterval(sampler)
    // The last reading, unless the interval just took one.
    if (samples.length === 0 || Date.now() - startedAt - samples.at(-1)!.at * 1000 > 2000) await sample()
    agent.destroy()

    // The first sample is the warm-up (JIT, pools, caches filling); growth is measured from the second.
    const reference = samples[Math.min(1, samples.length - 1)]!
    const last = samples.at(-1)!
    const growth = last.heapMb - reference.heapMb
    const ok = unexpected.length === 0 && growth <= MAX_HEAP_GROWTH_MB
    const report = renderReport({ samples, counts, requests, unexpected, growth, ok, seconds: SECONDS })
    process.stdout.write(`${report}\n`)
    writeSection(report)
    log(ok ? 'passed' : `FAILED: ${unexpected.length} unexpected answers, heap growth ${growth.toFixed(1)} MB (limit ${MAX_HEAP_GROWTH_MB})`)
    return ok ? 0 : 1
  } finally {
    await cleanup()
  }
}

function renderReport (run: { samples: Sample[]; counts: Map<string, number>; requests: number; unexpected: string[]; growth: number; ok: boolean; seconds: number }): string {
  const lines = [
    `Last run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${run.seconds} s, ${CLIENTS} clients, ${run.requests} requests ` +
      `(${(run.requests / run.seconds).toFixed(0)}/s) — ${run.ok ? 'passed' : 'FAILED'}: heap after GC ${run.growth >= 0 ? '+' : ''}${run.growth.toFixed(1)} MB from the first sample after the warm-up (limit ${MAX_HEAP_GROWTH_MB} MB), ${run.unexpected.length} unexpected answers.`,
    '',
    `Answers: ${[...run.counts].sort(([a], [b]) => a.localeCompare(b)).map(([key, n]) => `${key} × ${n}`).join(', ')}.`,
    '',
    '| elapsed (s) | requests | heap after GC (MB) | RSS (MB) |',
    '|---|---|---|---|',
    ...run.samples.map((entry) => `| ${entry.at} | ${entry.requests} | ${entry.heapMb.toFixed(1)} | ${entry.rssMb.toFixed(1)} |`)
  ]
  if (run.unexpected.length > 0) lines.push('', `Unexpected: ${[...new Set(run.unexpected)].slice(0, 10).join('; ')}`)
  return lines.join('\n')
}

/** Replaces what is between the soak markers of docs/reliability.md (the rest of the file is left alone). */
function writeSection (report: string): void {
  const begin = '<!-- soak:begin -->'
  const end = '<!-- soak:end -->'
  let text: string
  try { text = readFileSync(DOC, 'utf8') } catch { log(`${DOC} not found: the report is printed only`); return }
  const from = text.indexOf(begin)
  const to = text.indexOf(end)
  if (from === -1 || to < from) { log(`no ${begin} … ${end} markers in docs/reliability.md: the report is printed only`); return }
  writeFileSync(DOC, `${text.slice(0, from + begin.length)}\n${report}\n${text.slice(to)}`)
  log('docs/reliability.md updated')
}

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  process.stderr.write(`soak: ${(error as Error).stack ?? String(error)}\n`)
  process.exitCode = 1
})
