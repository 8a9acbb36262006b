// The in-memory store: the store conformance suite on a fake clock, then its LRU byte bound, eviction order and exact expiry.
import t from 'tap'
import { createMemoryStore } from '../../src/cache/memory-store.js'
import { encodeEntry } from '../../src/cache/store.js'
import { fakeClock, sampleEntry } from './fixtures/helpers.js'
import { storeConformance } from './fixtures/store-conformance.js'

t.test('conformance', async (t) => {
  storeConformance(t, async () => {
    const clock = fakeClock()
    const maxEntryBytes = 4096
    const store = createMemoryStore({ maxBytes: 1024 * 1024, maxEntryBytes, clock: clock.now })
    return { store, maxEntryBytes, elapse: async (ms) => { clock.advance(ms) } }
  })
})

// Every slot below has the same size: a 2-character key and a 1-character text.
const slotBytes = 2 + Buffer.byteLength(encodeEntry(sampleEntry('a')))

t.test('the total bytes never exceed maxBytes; the least recently used go first', async (t) => {
  const clock = fakeClock()
  const store = createMemoryStore({ maxBytes: slotBytes * 3, clock: clock.now })
  for (const name of ['k1', 'k2', 'k3']) await store.set(name, sampleEntry(name.slice(1)), 60)
  t.equal(store.size, 3)
  t.equal(store.bytes, slotBytes * 3)

  t.ok(await store.get('k1'), 'reading k1 makes it the most recently used')
  await store.set('k4', sampleEntry('4'), 60)
  t.equal(store.size, 3)
  t.ok(store.bytes <= slotBytes * 3)
  t.equal(await store.get('k2'), undefined, 'k2, least recently used, was evicted')
  t.ok(await store.get('k1'))
  t.ok(await store.get('k3'))
  t.ok(await store.get('k4'))

  // Now the order is k1, k3, k4 (oldest first); overwriting k1 makes it newest.
  await store.set('k1', sampleEntry('9'), 60)
  await store.set('k5', sampleEntry('5'), 60)
  t.equal(await store.get('k3'), undefined, 'k3 went next')
  t.equal((await store.get('k1'))?.answer.text, '9')
})

t.test('a large entry evicts as many old ones as it needs', async (t) => {
  const store = createMemoryStore({ maxBytes: 10_000, maxEntryBytes: 10_000 })
  for (let i = 0; i < 20; i++) await store.set(`k${i}`, sampleEntry(String(i)), 60)
  const before = store.size
  await store.set('big', sampleEntry('x'.repeat(9_000)), 60)
  t.ok(store.bytes <= 10_000, `bytes ${store.bytes} within the bound`)
  t.ok(store.size < before)
  t.ok(await store.get('big'))
  t.equal(await store.get('k0'), undefined)
})

t.test('an entry larger than the whole budget is not stored and evicts nothing', async (t) => {
  const store = createMemoryStore({ maxBytes: 2000, maxEntryBytes: 100_000 })
  await store.set('small', sampleEntry('s'), 60)
  t.equal(await store.set('huge', sampleEntry('x'.repeat(5000)), 60), 'too-large')
  t.ok(await store.get('small'))
  t.equal(store.size, 1)
})

t.test('expiry is exact on the injected clock, and frees the bytes', async (t) => {
  const clock = fakeClock()
  const store = createMemoryStore({ clock: clock.now })
  await store.set('k', sampleEntry(), 2)
  clock.advance(1999)
  t.ok(await store.get('k'), 'alive at ttl - 1 ms')
  clock.advance(1)
  t.equal(await store.get('k'), undefined, 'gone at ttl')
  t.equal(store.bytes, 0)
  t.equal(store.size, 0)
})

t.test('clear drops everything', async (t) => {
  const store = createMemoryStore()
  await store.set('a', sampleEntry(), 60)
  await store.set('b', sampleEntry(), 60)
  store.clear()
  t.equal(store.size, 0)
  t.equal(store.bytes, 0)
  t.equal(await store.get('a'), undefined)
})
