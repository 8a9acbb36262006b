// SSE pings: while a stream's upstream is silent the gateway sends `: ping` comments every AI_GATEWAY_SSE_PING_SECONDS (only between whole events, only once headers are out), they never count as upstream activity — a provider silent past AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS still ends with `event: error` — and 0 turns them off.
import t from 'tap'
import { request } from 'node:http'
import type { Behaviour } from '../helpers/upstream.js'
import { startUpstream } from '../helpers/upstream.js'
import { bearer, completionLine, startGateway } from '../helpers/gateway.js'

const CHAT = { messages: [{ role: 'user', content: 'hello' }] }
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** What the client read, block by block (split at blank lines), each with its arrival time. */
interface RawStream { status: number; blocks: Array<{ at: number; text: string }>; complete: boolean }

async function readStream (url: string, headers: Record<string, string>): Promise<RawStream> {
  const payload = JSON.stringify(CHAT)
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const started = Date.now()
      const blocks: RawStream['blocks'] = []
      let pending = ''
      res.setEncoding('utf8')
      res.on('data', (text: string) => {
        pending += text
        for (let end = pending.indexOf('\n\n'); end !== -1; end = pending.indexOf('\n\n')) {
          blocks.push({ at: Date.now() - started, text: pending.slice(0, end) })
          pending = pending.slice(end + 2)
        }
      })
      res.on('close', () => { resolve({ status: res.statusCode ?? 0, blocks, complete: res.complete }) })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Events with a silence before each (ms), then the end, or a hang after the last. */
function script (steps: Array<[number, string]>, then: 'end' | 'hang' = 'end'): Behaviour {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.flushHeaders()
    for (const [silenceMs, data] of steps) {
      await sleep(silenceMs)
      if (res.destroyed) return
      res.write(`data: ${data}\n\n`)
    }
    if (then === 'end') res.end()
  }
}

const PING = ': ping'

t.test('SSE pings', async (t) => {
  const upstream = await startUpstream(t)
  const gateway = await startGateway(t, {
    AI_UPSTREAM_URL: upstream.url,
    AI_GATEWAY_SSE_PING_SECONDS: '0.3',
    AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS: '1.5'
  })
  const auth = await bearer()

  t.test('a silence shorter than the idle timeout is filled with pings; the stream completes untouched', async (t) => {
    upstream.behave(script([[0, '{"delta":"a"}'], [1200, '{"delta":"b"}'], [100, '[DONE]']]))
    const stream = await readStream(`${gateway.url}/v1/ai/chat`, { ...auth, 'x-request-id': 'ping-ok' })
    t.equal(stream.status, 200)
    t.ok(stream.complete)
    const data = stream.blocks.filter((block) => block.text !== PING).map((block) => block.text)
    t.same(data, ['data: {"delta":"a"}', 'data: {"delta":"b"}', 'data: [DONE]'], 'the upstream events, unchanged and in order')
    const pings = stream.blocks.filter((block) => block.text === PING)
    t.ok(pings.length >= 3 && pings.length <= 4, `${pings.length} pings during the 1.2 s silence (every 0.3 s)`)
    const first = stream.blocks.findIndex((block) => block.text === PING)
    t.ok(first === 1 && stream.blocks[first + pings.length]?.text === 'data: {"delta":"b"}', 'all of them between the two events')
    const line = await completionLine(gateway, 'ping-ok')
    t.equal(line.status, 'success')
    t.notOk('error_type' in line)
  })

  t.test('pings do not reset the idle timeout: a silent provider still ends with event: error', async (t) => {
    upstream.behave(script([[0, '{"delta":"a"}']], 'hang'))
    const before = upstream.requests.length
    const stream = await readStream(`${gateway.url}/v1/ai/chat`, { ...auth, 'x-request-id': 'ping-idle' })
    t.ok(stream.complete, 'ended properly, not cut')
    const last = stream.blocks.at(-1)!
    t.match(last.text, /^event: error\ndata: /)
    t.equal(JSON.parse(last.text.split('data: ')[1]!).error.type, 'UPSTREAM_TIMEOUT')
    t.ok(last.at >= 1400 && last.at < 3000, `the error after ${last.at} ms of upstream silence (idle timeout 1.5 s), pings notwithstanding`)
    const pings = stream.blocks.filter((block) => block.text === PING)
    t.ok(pings.length >= 4, `${pings.length} pings kept the client's connection busy meanwhile`)
    t.ok((await upstream.closed(upstream.requests[before]!, 1000)).aborted, 'the silent upstream call was aborted')
    t.equal((await completionLine(gateway, 'ping-idle')).error_type, 'UPSTREAM_TIMEOUT')
  })

  t.test('a stream that talks steadily gets no ping', async (t) => {
    upstream.behave(script(Array.from({ length: 8 }, (_, i): [number, string] => [150, `{"delta":"${i}"}`])))
    const stream = await readStream(`${gateway.url}/v1/ai/chat`, auth)
    t.ok(stream.complete)
    t.equal(stream.blocks.filter((block) => block.text === PING).length, 0, 'events every 150 ms leave no 300 ms gap')
  })

  t.test('a JSON answer gets no ping, however slow', async (t) => {
    upstream.behave(async (_req, res) => {
      await sleep(800)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"ok":true}')
    })
    const stream = await readStream(`${gateway.url}/v1/ai/chat`, auth)
    t.equal(stream.status, 200)
    t.same(stream.blocks, [], 'no blank-line-separated block: the body is the JSON alone')
  })
})

t.test('AI_GATEWAY_SSE_PING_SECONDS=0: no pings', async (t) => {
  const upstream = await startUpstream(t, script([[0, '{"delta":"a"}'], [900, '[DONE]']]))
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_SSE_PING_SECONDS: '0', AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS: '2' })
  const stream = await readStream(`${gateway.url}/v1/ai/chat`, await bearer())
  t.ok(stream.complete)
  t.same(stream.blocks.map((block) => block.text), ['data: {"delta":"a"}', 'data: [DONE]'])
})
