// Scenario 3, two gateway replicas sharing Redis, one with its clock 10 minutes ahead (libfaketime, Debian's faketime package): still exactly N per window overall, and the waits they announce agree, because the limiter reads Redis's TIME.
import t from 'tap'
import { existsSync } from 'node:fs'
import { startRedis } from '../../../common/testkit/redis.js'
import { bearer, call, startGateway, type Reply } from '../helpers/gateway.js'
import { answerGenerate, generateBody, statusCounts } from '../helpers/generate.js'
import { respInteger } from '../helpers/reliability.js'
import { startUpstream } from '../helpers/upstream.js'

const SKEW_SECONDS = 600
/** Where Debian's libfaketime package puts the preload library (the `faketime` command sets LD_PRELOAD to it). */
const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1']
  .find((path) => existsSync(path))

t.test('exactly N across a replica 10 minutes ahead and one on time', { skip: LIBFAKETIME === undefined ? 'libfaketime is not installed (scripts/install-test-deps.sh installs faketime)' : false }, async (t) => {
  const N = 10
  const WINDOW_SECONDS = 60
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const env = {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_URL: redis.url,
    AI_ENGINE_RATE_LIMIT_PER_MIN: String(N),
    AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS: String(WINDOW_SECONDS),
    AI_ENGINE_REDIS_TIMEOUT_MS: '1000'
  }
  const onTime = await startGateway(t, env)
  // Only the wall clock is moved (as on a host whose NTP is off); timers keep the real monotonic clock.
  const ahead = await startGateway(t, { ...env, LD_PRELOAD: LIBFAKETIME, FAKETIME: `+${SKEW_SECONDS}s`, FAKETIME_DONT_FAKE_MONOTONIC: '1' })

  // The skew is real: the replica's log timestamps (pino's `time`, Date.now()) run 10 minutes ahead.
  const started = (gateway: typeof onTime): number => Date.parse(String(gateway.logs().find((line) => line.msg === 'listening')?.time))
  const skewMs = started(ahead) - started(onTime)
  t.ok(Math.abs(skewMs - SKEW_SECONDS * 1000) < 30_000, `the second replica's clock is ${(skewMs / 1000).toFixed(0)} s ahead`)

  const auth = await bearer({ sub: 'skewed-user' })
  const replies: Reply[] = []
  // Alternating, one at a time: each replica sees the other's requests in Redis.
  for (let i = 0; i < 3 * N; i++) replies.push(await call((i % 2 === 0 ? onTime : ahead).url, '/v1/ai/generate', { headers: auth, body: generateBody() }))
  t.same(statusCounts(replies), { 200: N, 429: 2 * N }, `exactly ${N} allowed out of ${3 * N}, half of them through the skewed replica`)
  t.same(replies.slice(0, N).map((reply) => reply.status), Array.from({ length: N }, () => 200), 'the first N, whichever replica answered')
  t.equal(respInteger(await redis.command('ZCARD', 'ai_ratelimit:{skewed-user}')), N, 'ZCARD = N')

  // Both replicas announce the same wait (to within the time between the two answers), not one 10 minutes off.
  const waits = replies.slice(-2).map((reply) => reply.json().error.retry_after_ms as number)
  t.ok(waits.every((wait) => wait > 0 && wait <= WINDOW_SECONDS * 1000), `retry_after_ms ${waits.join(' and ')} within the window`)
  t.ok(Math.abs(waits[0]! - waits[1]!) < 2000, 'the two replicas agree on when a slot frees up')
  t.equal(upstream.requests.length, N, 'upstream-ai saw N requests')
})
