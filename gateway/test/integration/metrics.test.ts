// Metrics through the built gateway: GET /metrics in Prometheus text format whose values move with traffic (requests, latency histogram, tokens, rate limits, in-flight and open streams back to 0); with AI_GATEWAY_METRICS_PORT on its own listener only (404 on the main port).
import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import { waitFor } from '../../../common/testkit/ports.js'
import { startUpstream, type Behaviour } from '../helpers/upstream.js'
import { bearer, call, openStream, startGateway } from '../helpers/gateway.js'
import { answerGenerate, generateBody } from '../helpers/generate.js'

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((pair) => [pair[1], pair[2]]))
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) return Number(match[3])
  }
  return undefined
}

function slowStream (): Behaviour {
  return async (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.flushHeaders()
    for (let i = 0; i < 4 && !res.destroyed; i++) {
      res.write(`event: delta\ndata: {"text":"${i}"}\n\n`)
      await delay(150)
    }
    res.end('event: done\ndata: {"usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7},"meta":{}}\n\n')
  }
}

t.test('/metrics on the main port moves with traffic', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_RATE_LIMIT_PER_MIN: '2' })
  const scrape = async (): Promise<string> => {
    const reply = await call(gateway.url, '/metrics')
    t.equal(reply.status, 200)
    t.match(reply.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    return reply.text
  }
  const generated = { route: '/v1/ai/generate', code: '200', outcome: 'success' }

  const before = await scrape()
  t.equal(sample(before, 'ai_gateway_requests_total', generated), undefined, 'no request yet')
  t.equal(sample(before, 'ai_gateway_requests_in_flight'), 0)
  t.equal(sample(before, 'ai_gateway_rate_limited_total', { route: '/v1/ai/generate' }), 0, 'present before the first refusal')
  t.match(before, /# TYPE ai_gateway_request_duration_seconds histogram/)
  t.match(before, /process_resident_memory_bytes \d+/, 'default process metrics')

  const auth = await bearer({ sub: 'metrics-user' })
  for (let i = 0; i < 2; i++) t.equal((await call(gateway.url, '/v1/ai/generate', { headers: auth, body: generateBody() })).status, 200)
  t.equal((await call(gateway.url, '/v1/ai/generate', { headers: auth, body: generateBody() })).status, 429)
  await call(gateway.url, '/v1/ai/generate', { body: generateBody() })

  const after = await waitFor(async () => {
    const text = await scrape()
    return sample(text, 'ai_gateway_requests_total', generated) === 2 ? text : undefined
  }, { what: 'the request counter to reach 2' })
  t.equal(sample(after, 'ai_gateway_request_duration_seconds_count', { route: '/v1/ai/generate', outcome: 'success', stream: 'false' }), 2, 'latency histogram count')
  t.ok(sample(after, 'ai_gateway_request_duration_seconds_sum', { route: '/v1/ai/generate', outcome: 'success' })! > 0, 'latency histogram sum')
  t.equal(sample(after, 'ai_gateway_upstream_duration_seconds_count', { route: '/v1/ai/generate' }), 2, 'upstream histogram: the 429 and 401 never called upstream-ai')
  t.equal(sample(after, 'ai_gateway_tokens_total', { route: '/v1/ai/generate', source: 'upstream' }), 30, 'tokens: 2 × 15')
  t.equal(sample(after, 'ai_gateway_requests_total', { code: '429', outcome: 'rate_limited' }), 1)
  t.equal(sample(after, 'ai_gateway_rate_limited_total', { route: '/v1/ai/generate' }), 1)
  t.equal(sample(after, 'ai_gateway_requests_total', { code: '401', outcome: 'error' }), 1)
  t.equal(sample(after, 'ai_gateway_errors_total', { error_type: 'UNAUTHORIZED' }), 1)
  t.equal(sample(after, 'ai_gateway_redis_fallback', { component: 'rate_limiter' }), 0)

  t.test('in flight and open streams, then back to 0', async (t) => {
    upstream.behave(slowStream())
    const stream = await openStream(gateway.url, '/v1/ai/chat', { headers: await bearer({ sub: 'streamer' }), body: { messages: [{ role: 'user', content: 'hi' }] } })
    await stream.waitForEvents(1)
    const during = await scrape()
    t.equal(sample(during, 'ai_gateway_requests_in_flight'), 1)
    t.equal(sample(during, 'ai_gateway_streams_open'), 1)
    await stream.ended
    const done = await waitFor(async () => {
      const text = await scrape()
      return sample(text, 'ai_gateway_requests_total', { route: '/v1/ai/chat', code: '200' }) === 1 ? text : undefined
    }, { what: 'the stream to be counted' })
    t.equal(sample(done, 'ai_gateway_requests_in_flight'), 0)
    t.equal(sample(done, 'ai_gateway_streams_open'), 0)
    t.equal(sample(done, 'ai_gateway_tokens_total', { route: '/v1/ai/chat', source: 'upstream' }), 7, 'tokens of the done event')
  })

  t.test('HEAD and other methods', async (t) => {
    t.equal((await call(gateway.url, '/metrics', { method: 'HEAD' })).status, 200)
    const post = await call(gateway.url, '/metrics', { method: 'POST', body: {} })
    t.equal(post.status, 405)
    t.equal(post.headers.allow, 'GET, HEAD')
  })
})

t.test('with AI_GATEWAY_METRICS_PORT, /metrics is served there only', async (t) => {
  const upstream = await startUpstream(t, answerGenerate())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_GATEWAY_METRICS_PORT: '0' })
  const line = await waitFor(() => gateway.logs().find((entry) => entry.msg === 'metrics listening'), { what: 'the metrics listener' })
  t.type(line.port, 'number')
  t.not(line.port, gateway.port)
  const metricsUrl = `http://127.0.0.1:${line.port as number}`

  const main = await call(gateway.url, '/metrics')
  t.equal(main.status, 404, 'not on the main port')
  t.equal(main.json().error.type, 'NOT_FOUND')

  t.equal((await call(gateway.url, '/v1/ai/generate', { headers: await bearer(), body: generateBody() })).status, 200)
  const reply = await call(metricsUrl, '/metrics')
  t.equal(reply.status, 200)
  t.equal(sample(reply.text, 'ai_gateway_requests_total', { route: '/v1/ai/generate', code: '200', outcome: 'success' }), 1)
  t.equal((await call(metricsUrl, '/v1/ai/generate', { headers: await bearer(), body: generateBody() })).status, 404, 'the metrics port serves nothing else')
  t.equal((await call(metricsUrl, '/health')).status, 404)
})

t.test('AI_GATEWAY_METRICS_PORT equal to PORT is refused at start-up', async (t) => {
  const { spawnProcess } = await import('../../../common/testkit/process.js')
  const run = spawnProcess(t, process.execPath, ['dist/gateway/src/main.js'], { env: { ENVIRONMENT: 'test', PORT: '9123', AI_GATEWAY_METRICS_PORT: '9123' } })
  const { code } = await run.exited
  t.equal(code, 1)
  t.match(run.stderr.join('\n'), /AI_GATEWAY_METRICS_PORT=9123: expected a port other than PORT/)
})
