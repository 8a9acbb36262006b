// The in-memory sliding window on a fake clock: exact at the window's edge, and bounded under 100 000 distinct users.
import t from 'tap'
import { createMemoryLimiter } from '../../src/ratelimit/memory-limiter.js'

function fakeClock (start = 1_000_000): { now: () => number; set: (ms: number) => void; advance: (ms: number) => void } {
  let current = start
  return { now: () => current, set: (ms) => { current = ms }, advance: (ms) => { current += ms } }
}

t.test('exact at the edge: just before t0 + window denied, at and after it allowed', async (t) => {
  const clock = fakeClock(0)
  const limiter = createMemoryLimiter({ limit: 2, windowMs: 1000, clock: clock.now })
  t.match(await limiter.check('alice'), { allowed: true, remaining: 1, resetMs: 1000 })
  t.match(await limiter.check('alice'), { allowed: true, remaining: 0, resetMs: 1000 })
  clock.set(999)
  t.match(await limiter.check('alice'), { allowed: false, remaining: 0, resetMs: 1, retryAfterMs: 1 }, 't0 + window − 1 ms: denied, 1 ms to wait')
  clock.set(999.9)
  t.match(await limiter.check('alice'), { allowed: false, retryAfterMs: 1 }, 'sub-millisecond before the edge: still denied, wait rounded up')
  clock.set(1000)
  t.match(await limiter.check('alice'), { allowed: true, remaining: 1 }, 't0 + window: both t0 requests left')
  clock.set(1001)
  t.match(await limiter.check('alice'), { allowed: true, remaining: 0 }, 'just after: allowed')
})

t.test('sliding, not fixed: each request leaves exactly one window after it was made', async (t) => {
  const clock = fakeClock(0)
  const limiter = createMemoryLimiter({ limit: 2, windowMs: 1000, clock: clock.now })
  await limiter.check('alice') // at 0
  clock.set(400)
  await limiter.check('alice') // at 400
  clock.set(500)
  t.match(await limiter.check('alice'), { allowed: false, retryAfterMs: 500, resetMs: 500 }, 'the request at 0 leaves at 1000')
  clock.set(1000)
  t.match(await limiter.check('alice'), { allowed: true, remaining: 0, resetMs: 400 }, 'slot freed at 1000; the request at 400 leaves at 1400')
  clock.set(1001)
  t.match(await limiter.check('alice'), { allowed: false, retryAfterMs: 399 })
  clock.set(1400)
  t.match(await limiter.check('alice'), { allowed: true, remaining: 0, resetMs: 600 })
})

t.test('denied requests do not consume budget', async (t) => {
  const clock = fakeClock(0)
  const limiter = createMemoryLimiter({ limit: 1, windowMs: 1000, clock: clock.now })
  await limiter.check('alice')
  for (let ms = 1; ms < 1000; ms += 10) {
    clock.set(ms)
    t.equal((await limiter.check('alice')).allowed, false)
  }
  clock.set(1000)
  t.equal((await limiter.check('alice')).allowed, true, 'free exactly one window after the only counted request')
  t.equal(limiter.storedRequests(), 1, 'one timestamp stored, not one per denial')
})

t.test('users are independent, keyed like Redis (case, whitespace and normalisation matter)', async (t) => {
  const limiter = createMemoryLimiter({ limit: 1, windowMs: 1000, clock: fakeClock().now })
  for (const id of ['alice', 'Alice', ' alice', 'caf\u00e9', 'cafe\u0301', '{alice}']) {
    t.equal((await limiter.check(id)).allowed, true, JSON.stringify(id))
  }
  t.equal(limiter.trackedUsers(), 6)
})

t.test('100 000 distinct users: tracked users stay at the cap, stored requests bounded', async (t) => {
  const clock = fakeClock()
  const maxUsers = 1000
  const limit = 30
  const limiter = createMemoryLimiter({ limit, windowMs: 60_000, clock: clock.now, maxUsers })
  let peakUsers = 0
  let peakStored = 0
  for (let i = 0; i < 100_000; i++) {
    // Long ids too: the memory limiter stores the hashed key, not the id.
    const id = i % 10 === 0 ? `user-${i}-${'x'.repeat(4096)}` : `user-${i}`
    await limiter.check(id)
    await limiter.check(id)
    if (i % 500 === 0) {
      peakUsers = Math.max(peakUsers, limiter.trackedUsers())
      peakStored = Math.max(peakStored, limiter.storedRequests())
    }
    clock.advance(0.01)
  }
  peakUsers = Math.max(peakUsers, limiter.trackedUsers())
  t.ok(peakUsers <= maxUsers, `peak tracked users ${peakUsers} ≤ ${maxUsers}`)
  t.equal(limiter.trackedUsers(), maxUsers, 'at the cap after the flood')
  t.ok(peakStored <= maxUsers * limit, `peak stored timestamps ${peakStored} ≤ ${maxUsers * limit}`)
  t.equal(limiter.storedRequests(), maxUsers * 2, 'two timestamps per tracked user')
  t.match(await limiter.check('user-99999'), { allowed: true, remaining: limit - 3 }, 'the most recent user is still tracked')
  t.match(await limiter.check('user-0'), { allowed: true, remaining: limit - 1 }, 'the oldest was evicted: its window starts over')
})

t.test('eviction takes the least recently checked user, not the first one added', async (t) => {
  const clock = fakeClock()
  const limiter = createMemoryLimiter({ limit: 5, windowMs: 60_000, clock: clock.now, maxUsers: 3 })
  for (const id of ['a', 'b', 'c']) await limiter.check(id)
  await limiter.check('a') // a is now the most recently checked
  await limiter.check('d') // over the cap: b goes
  t.equal(limiter.trackedUsers(), 3)
  t.match(await limiter.check('a'), { remaining: 2 }, 'a kept its window (third request)')
  t.match(await limiter.check('b'), { remaining: 4 }, 'b was evicted: its window starts over')
  t.match(await limiter.check('d'), { remaining: 3 }, 'd kept its window')
  t.match(await limiter.check('c'), { remaining: 4 }, 'c was evicted when b came back')
})

t.test('users whose window emptied are dropped as checks go by', async (t) => {
  const clock = fakeClock()
  const limiter = createMemoryLimiter({ limit: 5, windowMs: 1000, clock: clock.now, maxUsers: 10_000 })
  for (let i = 0; i < 1000; i++) await limiter.check(`early-${i}`)
  t.equal(limiter.trackedUsers(), 1000)
  clock.advance(1000)
  for (let i = 0; i < 100; i++) await limiter.check(`late-${i}`)
  t.equal(limiter.trackedUsers(), 100, 'only the users with requests in the window remain')
})

t.test('options are checked', async (t) => {
  t.throws(() => createMemoryLimiter({ limit: 0, windowMs: 1000 }), RangeError)
  t.throws(() => createMemoryLimiter({ limit: 1, windowMs: 0 }), RangeError)
  t.throws(() => createMemoryLimiter({ limit: 1, windowMs: 1000, maxUsers: 0 }), RangeError)
})
