// Through the shipped nginx.conf, its chat `proxy_read_timeout` cut to 2 s for the test (1h shipped): a provider silent for 3.5 s mid-stream does not cut the stream when the gateway sends `: ping` comments (AI_GATEWAY_SSE_PING_SECONDS=0.5); without pings nginx cuts it silently, which is what the pings are for.
import t from 'tap'
import { request } from 'node:http'
import { startUpstream, type Behaviour } from '../../gateway/test/helpers/upstream.js'
import { bearer, startGateway } from '../../gateway/test/helpers/gateway.js'
import { startNginx } from './helpers/nginx.js'
import { startStubApi } from './helpers/stack.js'

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))
/** The test's own change to the shipped file: the chat location's read timeout (the only `1h` one). */
const SHORT_CHAT_READ_TIMEOUT = [{ from: 'proxy_read_timeout 1h;', to: 'proxy_read_timeout 2s;', times: 1 }]

/** One event, 3.5 s of silence (past nginx's 2 s), one more, the end. */
const thinkingProvider: Behaviour = async (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  res.flushHeaders()
  res.write('data: {"delta":"a"}\n\n')
  await sleep(3500)
  if (res.destroyed) return
  res.write('data: {"delta":"b"}\n\n')
  res.end('event: done\ndata: {}\n\n')
}

async function chatThrough (web: string, headers: Record<string, string>): Promise<{ status: number; text: string; complete: boolean }> {
  const payload = JSON.stringify({ messages: [{ role: 'user', content: 'think hard' }] })
  return await new Promise((resolve, reject) => {
    const req = request(`${web}/v1/ai/chat`, { method: 'POST', agent: false, headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('error', () => {})
      res.on('close', () => { resolve({ status: res.statusCode ?? 0, text, complete: res.complete }) })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

// The two cases at once (separate gateways and nginx instances).
t.jobs = 2

for (const [label, pingSeconds] of [['with pings every 0.5 s', '0.5'], ['without pings', '0']] as const) {
  t.test(label, async (t) => {
    const upstream = await startUpstream(t, thinkingProvider)
    const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_SSE_PING_SECONDS: pingSeconds, AI_GATEWAY_STREAM_IDLE_TIMEOUT_SECONDS: '10' })
    const api = await startStubApi(t)
    const nginx = await startNginx(t, { gateway: `127.0.0.1:${gateway.port}`, api: `127.0.0.1:${api.port}`, overrides: SHORT_CHAT_READ_TIMEOUT })
    const stream = await chatThrough(nginx.url, await bearer())
    t.equal(stream.status, 200)
    if (pingSeconds !== '0') {
      t.ok(stream.complete, 'the stream reached its end through nginx')
      t.match(stream.text, /data: \{"delta":"a"\}\n\n(: ping\n\n){5,}data: \{"delta":"b"\}\n\nevent: done\n/, 'pings filled the silence, the events are whole and in order')
      t.notMatch(nginx.errorLog(), /upstream timed out/, 'nginx never timed out')
    } else {
      t.notOk(stream.complete, 'nginx cut the stream after 2 s of silence: the client sees no end and no error event')
      t.notMatch(stream.text, /delta":"b"/)
      t.match(nginx.errorLog(), /upstream timed out/, 'nginx says why, in its own log only')
    }
  })
}
