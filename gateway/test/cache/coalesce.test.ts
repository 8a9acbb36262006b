// Coalescing: concurrent identical runs share one upstream call and its answer or error (errors stored for none); the shared call is aborted only when every waiter has gone.
import t from 'tap'
import { checkStorableAnswer, createEntry } from '../../src/cache/answer.js'
import { createCoalescer } from '../../src/cache/coalesce.js'
import { createMemoryStore } from '../../src/cache/memory-store.js'

interface Deferred<T> { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void }
function deferred<T> (): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

const tick = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

interface UpstreamAnswer { status: number; body: string }
const OK_BODY = JSON.stringify({ text: 'Paris.', usage: { total_tokens: 5 }, meta: { model: 'm', request_id: 'first' } })

t.test('50 concurrent identical runs make one call and all get its answer', async (t) => {
  const coalescer = createCoalescer<UpstreamAnswer>()
  const upstream = deferred<UpstreamAnswer>()
  let calls = 0
  const runs = Array.from({ length: 50 }, async () => await coalescer.run('key', async () => {
    calls++
    return await upstream.promise
  }))
  await tick()
  t.equal(calls, 1)
  t.equal(coalescer.inFlight, 1)
  upstream.resolve({ status: 200, body: OK_BODY })
  const results = await Promise.all(runs)
  t.equal(calls, 1, 'still one call')
  t.ok(results.every((result) => result.value.body === OK_BODY), 'every run got the same answer')
  t.equal(results.filter((result) => !result.collapsed).length, 1, 'one run led')
  t.equal(results.filter((result) => result.collapsed).length, 49, '49 were collapsed into it')
  t.equal(coalescer.inFlight, 0, 'the key is free once the call settled')
})

t.test('different keys do not share a call; a run after the call settled starts a new one', async (t) => {
  const coalescer = createCoalescer<string>()
  let calls = 0
  const call = async (): Promise<string> => { calls++; return 'x' }
  await Promise.all([coalescer.run('a', call), coalescer.run('b', call)])
  t.equal(calls, 2)
  await coalescer.run('a', call)
  t.equal(calls, 3)
})

t.test('an upstream error reaches every waiter and is stored for none', async (t) => {
  const store = createMemoryStore()
  const coalescer = createCoalescer<UpstreamAnswer>()
  const upstream = deferred<UpstreamAnswer>()
  let calls = 0
  // The gateway's shape: one upstream call; store only a storable answer, inside the shared call.
  const call = async (): Promise<UpstreamAnswer> => {
    calls++
    const answer = await upstream.promise
    const check = checkStorableAnswer(answer.status, answer.body)
    if (check.storable) await store.set('key', createEntry(check.answer, Date.now()), 60)
    return answer
  }

  const thrown = Array.from({ length: 10 }, async () => await coalescer.run('key', call))
  await tick()
  const failure = new Error('connection reset')
  upstream.reject(failure)
  const settled = await Promise.allSettled(thrown)
  t.ok(settled.every((result) => result.status === 'rejected' && result.reason === failure), 'all 10 got the same error')
  t.equal(calls, 1)
  t.equal(await store.get('key'), undefined, 'nothing stored')

  // An error answer (502) is an answer like any other for coalescing, and is not stored either.
  const second = deferred<UpstreamAnswer>()
  const errorAnswers = Array.from({ length: 10 }, async () => await coalescer.run('key', async () => { calls++; return await second.promise.then(async (answer) => {
    const check = checkStorableAnswer(answer.status, answer.body)
    if (check.storable) await store.set('key', createEntry(check.answer, Date.now()), 60)
    return answer
  }) }))
  await tick()
  second.resolve({ status: 502, body: JSON.stringify({ error: { type: 'PROVIDER_ERROR' } }) })
  const results = await Promise.all(errorAnswers)
  t.ok(results.every((result) => result.value.status === 502))
  t.equal(calls, 2, 'one more call, no negative caching of the first error')
  t.equal(await store.get('key'), undefined, 'still nothing stored')
})

t.test('a successful shared answer is stored once', async (t) => {
  const store = createMemoryStore()
  const coalescer = createCoalescer<UpstreamAnswer>()
  let sets = 0
  const call = async (): Promise<UpstreamAnswer> => {
    await tick()
    const answer = { status: 200, body: OK_BODY }
    const check = checkStorableAnswer(answer.status, answer.body)
    if (check.storable) { sets++; await store.set('key', createEntry(check.answer, Date.now()), 60) }
    return answer
  }
  await Promise.all(Array.from({ length: 20 }, async () => await coalescer.run('key', call)))
  t.equal(sets, 1)
  t.equal((await store.get('key'))?.answer.text, 'Paris.')
  t.equal((await store.get('key'))?.answer.meta.request_id, undefined, 'the first request id is not stored')
})

t.test('the shared call is not aborted while one waiter remains; the waiters that left are rejected', async (t) => {
  const coalescer = createCoalescer<string>()
  const upstream = deferred<string>()
  let sharedSignal: AbortSignal | undefined
  const clients = [new AbortController(), new AbortController(), new AbortController()]
  const runs = clients.map(async (client) => await coalescer.run('key', async (signal) => {
    sharedSignal = signal
    return await upstream.promise
  }, client.signal))
  // Watch the outcomes from the start: runs that leave reject before the others settle.
  const outcomes = Promise.allSettled(runs)
  await tick()
  clients[0]!.abort()
  clients[1]!.abort()
  await tick()
  t.equal(sharedSignal?.aborted, false, 'two of three left: the call goes on')
  upstream.resolve('answer')
  const [first, second, third] = await outcomes
  t.equal(first?.status, 'rejected')
  t.match((first as PromiseRejectedResult).reason, { name: 'AbortError' })
  t.equal(second?.status, 'rejected')
  t.same(third, { status: 'fulfilled', value: { value: 'answer', collapsed: true } })
})

t.test('the shared call is aborted when the last waiter leaves, and a later run starts afresh', async (t) => {
  const coalescer = createCoalescer<string>()
  let calls = 0
  let sharedSignal: AbortSignal | undefined
  const call = async (signal: AbortSignal): Promise<string> => {
    calls++
    sharedSignal = signal
    return await new Promise((_resolve, reject) => {
      signal.addEventListener('abort', () => { setTimeout(() => reject(signal.reason), 20) })
    })
  }
  const clients = Array.from({ length: 5 }, () => new AbortController())
  const outcomes = Promise.allSettled(clients.map(async (client) => await coalescer.run('key', call, client.signal)))
  await tick()
  for (const client of clients.slice(0, 4)) client.abort()
  await tick()
  t.equal(sharedSignal?.aborted, false, 'four of five gone: not yet')
  clients[4]!.abort(new Error('client closed'))
  await tick()
  t.equal(sharedSignal?.aborted, true, 'the last one gone: aborted')
  const settled = await outcomes
  t.ok(settled.every((result) => result.status === 'rejected'))
  t.match((settled[4] as PromiseRejectedResult).reason, { message: 'client closed' }, 'each waiter gets its own abort reason')
  t.equal(coalescer.inFlight, 0, 'the aborted call is forgotten at once')

  // The aborted call is still winding down (rejects 20 ms later); a new run must not join it.
  const fresh = coalescer.run('key', async () => { calls++; return 'fresh' })
  t.same(await fresh, { value: 'fresh', collapsed: false })
  t.equal(calls, 2)
})

t.test('a waiter without a signal keeps the call alive', async (t) => {
  const coalescer = createCoalescer<string>()
  const upstream = deferred<string>()
  let sharedSignal: AbortSignal | undefined
  const client = new AbortController()
  const withSignal = coalescer.run('key', async (signal) => { sharedSignal = signal; return await upstream.promise }, client.signal)
  const withoutSignal = coalescer.run('key', async () => 'unused')
  await tick()
  client.abort()
  await t.rejects(withSignal)
  t.equal(sharedSignal?.aborted, false)
  upstream.resolve('answer')
  t.same(await withoutSignal, { value: 'answer', collapsed: true })
})

t.test('an already aborted waiter is refused without starting a call', async (t) => {
  const coalescer = createCoalescer<string>()
  let calls = 0
  await t.rejects(coalescer.run('key', async () => { calls++; return 'x' }, AbortSignal.abort()))
  t.equal(calls, 0)
  t.equal(coalescer.inFlight, 0)
})

t.test('a call that throws synchronously is an error for its waiters, not a crash', async (t) => {
  const coalescer = createCoalescer<string>()
  const boom = new Error('boom')
  await t.rejects(coalescer.run('key', () => { throw boom }), boom)
  t.equal(coalescer.inFlight, 0)
})
