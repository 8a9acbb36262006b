// Oversized and dripping upstream answers: a 200 MB answer (streamed by the test upstream, never allocated) costs the gateway bounded memory on every path — the cache path refuses it with 502 past its read bound and stores nothing, the proxy path relays it with backpressure; answers dripping a byte at a time end at the deadline (504 before headers, a cut after) and a stream dripping an event that never ends gets `event: error`; nothing of them is cached.
import t from 'tap'
import { request } from 'node:http'
import type { Behaviour } from '../helpers/upstream.js'
import { startUpstream } from '../helpers/upstream.js'
import { bearer, call, openStream, startGateway } from '../helpers/gateway.js'
import { rssBytes } from '../helpers/process-stats.js'

const MB = 1024 * 1024
const HUGE_BYTES = 200 * MB
/** Growth of the gateway's RSS over its idle baseline that counts as bounded while 200 MB pass (garbage not yet collected included). */
const RSS_BOUND = 128 * MB
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** A 200 MB JSON answer written 64 KiB at a time from one reused buffer, honouring backpressure; `written` counts the bytes of the last one. */
function huge (): Behaviour & { written: number } {
  const chunk = Buffer.alloc(64 * 1024, 'a')
  const behaviour = Object.assign(async (_req: Parameters<Behaviour>[0], res: Parameters<Behaviour>[1]) => {
    behaviour.written = 0
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(HUGE_BYTES + 12) })
    res.write('{"text":"')
    for (let sent = 0; sent < HUGE_BYTES && !res.destroyed; sent += chunk.length) {
      behaviour.written += chunk.length
      if (!res.write(chunk)) await new Promise((resolve) => { res.once('drain', resolve); res.once('close', resolve) })
    }
    if (!res.destroyed) res.end('"}\n')
  }, { written: 0 })
  return behaviour
}

/** A JSON (or SSE) answer whose headers come at once and whose bytes then drip, one every 50 ms, forever. */
function drip (contentType: string, first: string): Behaviour {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': contentType })
    res.flushHeaders()
    res.write(first)
    while (!res.destroyed) {
      await sleep(50)
      if (!res.destroyed) res.write('x')
    }
  }
}

/** Samples `pid`'s RSS every 50 ms until stopped; resolves with the peak. */
function sampleRss (pid: number): { stop: () => number } {
  let peak = rssBytes(pid)
  const timer = setInterval(() => { try { peak = Math.max(peak, rssBytes(pid)) } catch { /* exited */ } }, 50)
  return { stop: () => { clearInterval(timer); return peak } }
}

/** POSTs and reads the whole answer, counting its bytes without keeping them. */
async function drain (url: string, headers: Record<string, string>, body: unknown): Promise<{ status: number; bytes: number; complete: boolean }> {
  const payload = Buffer.from(JSON.stringify(body))
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, headers: { ...headers, 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      let bytes = 0
      res.on('data', (chunk: Buffer) => { bytes += chunk.length })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, bytes, complete: true }) })
      res.on('error', () => { resolve({ status: res.statusCode ?? 0, bytes, complete: false }) })
      res.on('close', () => { resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete }) })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

t.test('a 200 MB answer', async (t) => {
  const answer = huge()
  const upstream = await startUpstream(t, answer)
  // The deadline leaves the 200 MB relay time to finish, and cuts the client that never reads.
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_RATE_LIMIT_ENABLED: 'false', AI_ENGINE_TIMEOUT_SECONDS: '5' })
  const auth = await bearer()
  const pid = gateway.child.pid!
  await call(gateway.url, '/health/live')
  const baseline = rssBytes(pid)

  t.test('cache path: 502 past the read bound, the upstream call aborted, nothing stored, memory bounded', async (t) => {
    const body = { use_case: 'horoscope_daily', input: { sign: 'leo' } }
    const sampler = sampleRss(pid)
    const started = Date.now()
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: auth, body })
    const peak = sampler.stop()
    t.equal(reply.status, 502)
    t.equal(reply.json().error.type, 'UPSTREAM_UNAVAILABLE')
    t.match(reply.json().error.message, /larger than/)
    t.equal(reply.headers['x-cache'], 'MISS')
    t.ok(Date.now() - started < 5000, `refused after ${Date.now() - started} ms`)
    const received = await upstream.closed(upstream.requests.at(-1)!, 2000)
    t.ok(received.aborted, 'the upstream answer was cut, not read to its end')
    t.ok(peak - baseline < RSS_BOUND, `gateway RSS peaked ${((peak - baseline) / MB).toFixed(1)} MB over its baseline`)
    const again = await call(gateway.url, '/v1/ai/generate', { headers: auth, body })
    t.equal(again.status, 502)
    t.equal(again.headers['x-cache'], 'MISS', 'nothing was stored: the same request misses again')
    t.equal(upstream.requests.length, 2, 'and goes to upstream-ai again')
  })

  t.test('proxy path: relayed whole with backpressure, memory bounded', async (t) => {
    const sampler = sampleRss(pid)
    const reply = await drain(`${gateway.url}/v1/ai/generate`, auth, { use_case: 'horoscope_daily', input: { sign: 'leo' }, options: { temperature: 0.9 } })
    const peak = sampler.stop()
    t.equal(reply.status, 200)
    t.ok(reply.complete)
    t.equal(reply.bytes, HUGE_BYTES + 12, 'every byte reached the client')
    t.ok(peak - baseline < RSS_BOUND, `gateway RSS peaked ${((peak - baseline) / MB).toFixed(1)} MB over its baseline`)
  })

  t.test('proxy path, a client that does not read: memory bounded, cut at the deadline', async (t) => {
    const before = upstream.requests.length
    const payload = JSON.stringify({ use_case: 'horoscope_daily', input: { sign: 'leo' }, options: { temperature: 0.9 } })
    const sampler = sampleRss(pid)
    const req = request(`${gateway.url}/v1/ai/generate`, { method: 'POST', agent: false, headers: { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => { res.pause() })
    req.on('error', () => {})
    req.end(payload)
    const received = await upstream.request(before + 1)
    await upstream.closed(received, 8000)
    const peak = sampler.stop()
    t.ok(received.aborted, 'the upstream call was aborted at the gateway\'s deadline')
    t.ok(answer.written < 32 * MB, `backpressure: upstream-ai could write only ${(answer.written / MB).toFixed(1)} MB of the 200 before the gateway stopped reading`)
    t.ok(peak - baseline < RSS_BOUND, `gateway RSS peaked ${((peak - baseline) / MB).toFixed(1)} MB over its baseline`)
    req.destroy()
  })
})

t.test('dripping answers', async (t) => {
  const upstream = await startUpstream(t)
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    AI_ENGINE_CACHE_ENABLED: 'true',
    AI_ENGINE_RATE_LIMIT_ENABLED: 'false',
    AI_ENGINE_TIMEOUT_SECONDS: '1',
    AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS: '1'
  })
  const auth = await bearer()

  t.test('cache path: 504 at the deadline, nothing stored', async (t) => {
    upstream.behave(drip('application/json', '{"text":"'))
    const body = { use_case: 'horoscope_daily', input: { sign: 'drip' } }
    const started = Date.now()
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: auth, body })
    const elapsed = Date.now() - started
    t.equal(reply.status, 504)
    t.equal(reply.json().error.type, 'UPSTREAM_TIMEOUT')
    t.ok(elapsed >= 900 && elapsed < 3000, `after ${elapsed} ms (deadline 1 s)`)
    t.ok((await upstream.closed(upstream.requests.at(-1)!, 1000)).aborted, 'the upstream call was aborted')
    const before = upstream.requests.length
    t.equal((await call(gateway.url, '/v1/ai/generate', { headers: auth, body })).headers['x-cache'], 'MISS', 'nothing stored')
    t.equal(upstream.requests.length, before + 1)
  })

  t.test('proxy path: the headers went out, so the answer is cut at the deadline', async (t) => {
    upstream.behave(drip('application/json', '{"text":"'))
    const started = Date.now()
    const reply = await drain(`${gateway.url}/v1/ai/generate`, auth, { use_case: 'horoscope_daily', input: { sign: 'drip' }, options: { temperature: 1 } })
    const elapsed = Date.now() - started
    t.equal(reply.status, 200, 'the status went out with the headers')
    t.notOk(reply.complete, 'the client sees a cut answer, never a hang')
    t.ok(elapsed >= 900 && elapsed < 3000, `cut after ${elapsed} ms (deadline 1 s)`)
    t.ok((await upstream.closed(upstream.requests.at(-1)!, 1000)).aborted)
  })

  t.test('a stream dripping one event that never ends: event: error at the idle timeout', async (t) => {
    upstream.behave(drip('text/event-stream', 'data: {"delta":"a"}\n\ndata: {"delta":"'))
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: auth, body: { messages: [{ role: 'user', content: 'hi' }] } })
    const { complete } = await stream.ended
    t.ok(complete, 'ended properly')
    t.same(stream.events.map((event) => event.event), ['message', 'error'], 'the whole event, then the error; the dripped half never')
    t.equal(JSON.parse(stream.events[1]!.data).error.type, 'UPSTREAM_TIMEOUT')
    t.ok(stream.events[1]!.at >= 900 && stream.events[1]!.at < 3000, `after ${stream.events[1]!.at} ms (idle timeout 1 s)`)
    t.ok((await upstream.closed(upstream.requests.at(-1)!, 1000)).aborted)
  })
})
