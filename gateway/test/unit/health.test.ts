// Health aggregation: healthy / degraded (Redis or PostgreSQL down) / unhealthy (upstream-ai down or draining) with the right HTTP status; probes run in parallel, are bounded by their deadline, and their results are cached and shared.
import t from 'tap'
import { createHealth } from '../../src/health.js'
import { failureReason, timedProbe, type Probe, type ProbeResult } from '../../src/probes/probe.js'

const now = (): number => performance.now()
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** A probe whose answer the test sets, counting its calls. */
function fakeProbe (ok = true, delayMs = 0): Probe & { calls: number; ok: boolean } {
  const probe = Object.assign(async (): Promise<ProbeResult> => {
    probe.calls++
    if (delayMs > 0) await sleep(delayMs)
    return probe.ok ? { ok: true, latency_ms: delayMs } : { ok: false, latency_ms: delayMs, error: 'ECONNREFUSED' }
  }, { calls: 0, ok })
  return probe
}

t.test('the three states and their status codes', async (t) => {
  const upstream = fakeProbe()
  const redis = fakeProbe()
  const db = fakeProbe()
  let draining = false
  const health = createHealth({ upstream, redis, db, isDraining: () => draining, now, cacheMs: 0, wallClock: () => new Date('2026-01-02T03:04:05.678Z') })

  let report = await health.report()
  t.equal(report.httpStatus, 200)
  t.same(report.body, {
    status: 'healthy',
    services: { redis: 'ok', upstream: 'ok', db: 'ok' },
    checked_at: '2026-01-02T03:04:05.678Z',
    draining: false,
    details: { redis: { ok: true, latency_ms: 0 }, upstream: { ok: true, latency_ms: 0 }, db: { ok: true, latency_ms: 0 } }
  })

  redis.ok = false
  report = await health.report()
  t.equal(report.httpStatus, 200, 'degraded still serves')
  t.match(report.body, { status: 'degraded', services: { redis: 'down', upstream: 'ok', db: 'ok' }, details: { redis: { ok: false, error: 'ECONNREFUSED' } } })

  redis.ok = true
  db.ok = false
  t.match((await health.report()).body, { status: 'degraded', services: { db: 'down' } })

  upstream.ok = false
  report = await health.report()
  t.equal(report.httpStatus, 503)
  t.match(report.body, { status: 'unhealthy', services: { upstream: 'down', db: 'down' } })

  upstream.ok = true
  db.ok = true
  draining = true
  report = await health.report()
  t.equal(report.httpStatus, 503)
  t.match(report.body, { status: 'unhealthy', draining: true, services: { redis: 'ok', upstream: 'ok', db: 'ok' } })
})

t.test('unconfigured dependencies are disabled and do not degrade', async (t) => {
  const health = createHealth({ upstream: fakeProbe(), isDraining: () => false, now })
  const report = await health.report()
  t.equal(report.httpStatus, 200)
  t.same(report.body.services, { redis: 'disabled', upstream: 'ok', db: 'disabled' })
  t.same(Object.keys(report.body.details), ['upstream'])
})

t.test('probes run in parallel; results are cached for cacheMs and shared by concurrent callers', async (t) => {
  const upstream = fakeProbe(true, 100)
  const redis = fakeProbe(true, 100)
  const db = fakeProbe(true, 100)
  const health = createHealth({ upstream, redis, db, isDraining: () => false, now, cacheMs: 300 })
  const started = now()
  const reports = await Promise.all(Array.from({ length: 50 }, async () => await health.report()))
  t.ok(now() - started < 250, `three 100 ms probes in parallel took ${Math.round(now() - started)} ms`)
  t.ok(reports.every((report) => report.body.checked_at === reports[0]!.body.checked_at), 'one round for all')
  t.same([upstream.calls, redis.calls, db.calls], [1, 1, 1])
  await health.report()
  t.same([upstream.calls, redis.calls, db.calls], [1, 1, 1], 'reused within cacheMs')
  await sleep(350)
  await health.report()
  t.same([upstream.calls, redis.calls, db.calls], [2, 2, 2], 'probed again after cacheMs')
})

t.test('a probe never outlives its deadline and never throws', async (t) => {
  const hanging = timedProbe(async () => await new Promise<undefined>(() => {}), 100, now)
  const started = now()
  const result = await hanging()
  t.ok(now() - started < 300, 'answered at the deadline')
  t.match(result, { ok: false, error: 'timeout' })
  t.match(await timedProbe(async () => { throw Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) }, 100, now)(), { ok: false, error: 'ECONNREFUSED' })
  t.match(await timedProbe(async () => 'HTTP 503', 100, now)(), { ok: false, error: 'HTTP 503' })
  t.match(await timedProbe(async () => undefined, 100, now)(), { ok: true })
  t.equal(failureReason(new Error('Command timed out')), 'timeout')
  t.equal(failureReason(new TypeError('x')), 'TypeError')
  t.equal(failureReason(Object.assign(new Error('x'), { code: 'has spaces and is long' })), 'Error', 'only identifier-like codes')
})
