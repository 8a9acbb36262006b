// End to end: the built gateway in front of the real upstream-ai (mock provider): generate, a streamed chat, an upstream validation error passed through, one request id and trace across both services, and health.
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, startService } from '../../../common/testkit/process.js'
import { bearer, call, completionLine, openStream, startGateway } from '../helpers/gateway.js'

const UPSTREAM_AI_MAIN = 'dist/upstream-ai/src/main.js'

const skip = existsSync(join(ROOT, UPSTREAM_AI_MAIN)) ? false : `${UPSTREAM_AI_MAIN} is not built`

t.test('gateway → upstream-ai (mock provider)', { skip }, async (t) => {
  const upstreamAi = await startService(t, UPSTREAM_AI_MAIN, { ENVIRONMENT: 'test', AI_PROVIDER: 'mock', OPENAI_API_KEY: undefined, MOCK_PROVIDER_LATENCY_MS: '20' })
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstreamAi.url })
  const traceId = '5bf92f3577b34da6a3ce929d0e0e4736'
  const traceparent = `00-${traceId}-00f067aa0ba902b7-01`

  t.test('generate', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', {
      headers: { ...(await bearer({ sub: 'grace' })), 'x-request-id': 'e2e-generate', traceparent },
      body: { use_case: 'horoscope_daily', input: { sign: 'leo' } }
    })
    t.equal(reply.status, 200)
    t.equal(reply.headers['x-request-id'], 'e2e-generate')
    const answer = reply.json()
    t.type(answer.text, 'string')
    t.ok(answer.text.length > 0)
    t.equal(answer.meta.request_id, 'e2e-generate', 'upstream-ai saw the same request id')
    t.equal(answer.meta.trace_id, traceId, 'and the same trace')
    const upstreamLine = await (async () => {
      for (let i = 0; i < 50; i++) {
        const line = upstreamAi.logs().find((entry) => entry.request_id === 'e2e-generate' && entry.user_id !== undefined)
        if (line !== undefined) return line
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      return undefined
    })()
    t.equal(upstreamLine?.user_id, 'grace', 'upstream-ai knows the verified user')
    t.match(await completionLine(gateway, 'e2e-generate'), { http_status: 200, status: 'success', user_id: 'grace', use_case: 'horoscope_daily' })
  })

  t.test('streamed chat', async (t) => {
    const stream = await openStream(gateway.url, '/v1/ai/chat', {
      headers: { ...(await bearer()), 'x-request-id': 'e2e-chat' },
      body: { messages: [{ role: 'user', content: 'What does Mercury retrograde mean?' }] }
    })
    t.equal(stream.res.statusCode, 200)
    t.equal(stream.res.headers['x-accel-buffering'], 'no')
    const { complete } = await stream.ended
    t.ok(complete)
    const kinds = stream.events.map((event) => event.event)
    t.ok(kinds.filter((kind) => kind === 'delta').length >= 2, 'several deltas')
    t.equal(kinds.at(-1), 'done')
    t.notOk(kinds.includes('error'))
    t.match(await completionLine(gateway, 'e2e-chat'), { stream: true, status: 'success', use_case: 'chat' })
  })

  t.test('an upstream-ai validation error passes through', async (t) => {
    const reply = await call(gateway.url, '/v1/ai/generate', { headers: await bearer(), body: { use_case: 'no_such_template', input: {} } })
    t.equal(reply.status, 400)
    t.equal(reply.json().error.type, 'UNKNOWN_USE_CASE')
  })

  t.test('health probes upstream-ai', async (t) => {
    const reply = await call(gateway.url, '/health')
    t.equal(reply.status, 200)
    t.equal(reply.json().services.upstream, 'ok')
  })
})
