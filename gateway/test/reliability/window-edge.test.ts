// Scenario 2, the window's edge on Redis through the gateway: N requests at t0, one just before t0 + W is 429 with retry_after_ms matching Redis's clock, one just after is 200.
import t from 'tap'
import { sleep } from '../../../common/testkit/ports.js'
import { startRedis, type RedisServer } from '../../../common/testkit/redis.js'
import { bearer, call, startGateway, type Reply } from '../helpers/gateway.js'
import { answerGenerate, generateBody } from '../helpers/generate.js'
import { respArray } from '../helpers/reliability.js'
import { startUpstream } from '../helpers/upstream.js'

const N = 3
const WINDOW_MS = 2000
/** How far before the edge the "just before" request is sent: room for one request through a gateway process on a busy machine. */
const BEFORE_EDGE_MS = 300

/** Redis's clock (TIME), in µs: the limiter's clock. */
async function redisTimeUs (redis: RedisServer): Promise<number> {
  const [seconds, micros] = respArray(await redis.command('TIME'))
  return Number(seconds) * 1_000_000 + Number(micros)
}

async function untilRedisTime (redis: RedisServer, targetUs: number): Promise<void> {
  for (;;) {
    const left = targetUs - await redisTimeUs(redis)
    if (left <= 0) return
    await sleep(Math.min(Math.max(left / 1000 - 5, 1), 200))
  }
}

t.test('N at t0; just before t0 + W: 429 with the exact wait; just after: 200', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    REDIS_URL: redis.url,
    AI_ENGINE_RATE_LIMIT_PER_MIN: String(N),
    AI_ENGINE_RATE_LIMIT_WINDOW_SECONDS: String(WINDOW_MS / 1000),
    AI_ENGINE_REDIS_TIMEOUT_MS: '1000'
  })
  const generate = async (user: string): Promise<Reply> => await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: user }), body: generateBody() })

  // A stalled machine can push the "just before" request past the edge; then the case is tried again with a new user.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const user = `edge-${attempt}`
    for (let i = 0; i < N; i++) t.equal((await generate(user)).status, 200, `request ${i + 1} at t0`)
    const [, oldestScore] = respArray(await redis.command('ZRANGE', `ai_ratelimit:{${user}}`, '0', '0', 'WITHSCORES'))
    const edgeUs = Number(oldestScore) + WINDOW_MS * 1000

    await untilRedisTime(redis, edgeUs - BEFORE_EDGE_MS * 1000)
    const callsBefore = upstream.requests.length
    const before = await redisTimeUs(redis)
    const denied = await generate(user)
    const after = await redisTimeUs(redis)
    if (after >= edgeUs) {
      t.comment(`attempt ${attempt}: the request took until past the edge (${((after - before) / 1000).toFixed(0)} ms); trying again`)
      continue
    }
    t.equal(denied.status, 429, `${((edgeUs - after) / 1000).toFixed(0)}–${((edgeUs - before) / 1000).toFixed(0)} ms before the edge: denied`)
    const retryAfterMs = denied.json().error.retry_after_ms as number
    // The script rounds the wait up to whole ms, from its own TIME, taken between `before` and `after`.
    const lowest = Math.max(1, Math.ceil((edgeUs - after) / 1000))
    const highest = Math.ceil((edgeUs - before) / 1000)
    t.ok(retryAfterMs >= lowest && retryAfterMs <= highest, `retry_after_ms ${retryAfterMs} within [${lowest}, ${highest}]: the time left until the oldest request leaves`)
    t.equal(denied.headers['retry-after'], String(Math.ceil(retryAfterMs / 1000)), 'Retry-After: the same wait in whole seconds')

    await untilRedisTime(redis, edgeUs + 20_000)
    const allowed = await generate(user)
    t.equal(allowed.status, 200, 'just after the edge: allowed')
    t.equal(allowed.headers['x-ratelimit-remaining'], '0', 'one slot freed, and taken')
    t.equal(upstream.requests.length, callsBefore + 1, 'the denied request never reached upstream-ai')
    return
  }
  t.fail('the machine was too slow three times in a row to land a request just before the edge')
})
