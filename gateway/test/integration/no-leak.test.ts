// No leak: a canary marker placed in birth data, prompts, message contents, the bearer token, cookies and API-key headers never appears in anything the gateway or the real upstream-ai (mock provider) write, at debug level too; and every stdout line is one JSON log object.
import t from 'tap'
import { waitFor } from '../../../common/testkit/ports.js'
import { completionLine as upstreamCompletionLine, startUpstreamAi } from '../../../upstream-ai/test/helpers/upstream.js'
import { bearer, call, completionLine, openStream, startGateway, token } from '../helpers/gateway.js'

const CANARY = 'CANARY7f3a9c'

for (const [label, env] of [['LOG_LEVEL=debug', { LOG_LEVEL: 'debug' }], ['DEBUG=true', { LOG_LEVEL: undefined, DEBUG: 'true' }]] as const) {
  t.test(`nothing sensitive in either service's output (${label})`, async (t) => {
    const upstreamAi = await startUpstreamAi(t, { AI_PROVIDER: 'mock', MOCK_PROVIDER_LATENCY_MS: '1', ...env })
    const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstreamAi.url, AI_ENGINE_CACHE_ENABLED: 'true', ...env })
    const jwt = await token({ sub: 'canary-user' })
    const headers = {
      authorization: `Bearer ${jwt}`,
      cookie: `session=${CANARY}-cookie`,
      'x-api-key': `${CANARY}-api-key`
    }
    const secretInput = {
      birth_data: { date: `${CANARY}-1990-01-01`, time: '04:30', place: `${CANARY}-Lyon` },
      prompt: `${CANARY}-prompt`,
      email: `${CANARY}@example.com`,
      note: { password: `${CANARY}-password` }
    }

    const generate = await call(gateway.url, '/v1/ai/generate', { headers: { ...headers, 'x-request-id': 'leak-generate' }, body: { use_case: 'natal_chart_summary', input: secretInput, context: { content: `${CANARY}-context` } } })
    t.equal(generate.status, 200)
    // Twice: the second is a cache hit.
    t.equal((await call(gateway.url, '/v1/ai/generate', { headers: { ...headers, 'x-request-id': 'leak-generate-hit' }, body: { use_case: 'natal_chart_summary', input: secretInput, context: { content: `${CANARY}-context` } } })).status, 200)
    const stream = await openStream(gateway.url, '/v1/ai/chat', {
      headers: { ...headers, 'x-request-id': 'leak-stream' },
      body: { messages: [{ role: 'system', content: `${CANARY}-system` }, { role: 'user', content: `${CANARY}-question about ${JSON.stringify(secretInput.birth_data)}` }], context: { birth_data: secretInput.birth_data } }
    })
    await stream.ended
    t.ok(stream.events.some((event) => event.event === 'done'), 'the stream completed')
    const json = await call(gateway.url, '/v1/ai/chat', { headers: { ...headers, 'x-request-id': 'leak-chat-json' }, body: { stream: false, messages: [{ role: 'user', content: `${CANARY}-json-question` }] } })
    t.equal(json.status, 200)
    // Refusals: a bearer token that is itself the canary, a body upstream-ai refuses, one the gateway refuses.
    t.equal((await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${CANARY}.${CANARY}.${CANARY}`, 'x-request-id': 'leak-401' }, body: { input: secretInput } })).status, 401)
    t.equal((await call(gateway.url, '/v1/ai/chat', { headers: { ...headers, 'x-request-id': 'leak-400' }, body: { messages: [{ role: `${CANARY}-role`, content: `${CANARY}-content` }] } })).status, 400)
    t.equal((await call(gateway.url, '/v1/ai/generate', { headers: { ...(await bearer()), 'x-request-id': 'leak-400-json', 'content-type': 'application/json' }, body: `{"input": {"birth_data": "${CANARY}"` })).status, 400)
    // Straight to upstream-ai too, with the canary where the gateway would have removed it.
    t.equal((await call(upstreamAi.url, '/v1/ai/generate', { headers: { ...headers, 'x-request-id': 'leak-direct' }, body: { use_case: 'horoscope_daily', input: secretInput } })).status, 200)

    for (const id of ['leak-generate', 'leak-generate-hit', 'leak-stream', 'leak-chat-json', 'leak-401', 'leak-400', 'leak-400-json']) await completionLine(gateway, id)
    for (const id of ['leak-generate', 'leak-stream', 'leak-chat-json', 'leak-400', 'leak-direct']) await upstreamCompletionLine(upstreamAi, id)
    t.equal((await call(gateway.url, '/health')).status, 200)
    await waitFor(() => upstreamAi.logs().find((line) => line.level === 'debug' && line.route === '/health'), { what: 'upstream-ai\'s debug line for the health probe' })

    for (const [name, service] of [['gateway', gateway], ['upstream-ai', upstreamAi]] as const) {
      const output = [...service.stdout, ...service.stderr].join('\n')
      t.notOk(output.includes(CANARY), `${name}: the canary is nowhere in stdout or stderr`)
      t.notOk(output.includes(jwt), `${name}: the bearer token is nowhere`)
      t.notOk(output.includes(jwt.split('.')[2]!), `${name}: not even its signature`)
      const notJson = service.stdout.filter((line) => {
        try {
          const value = JSON.parse(line) as Record<string, unknown>
          return typeof value.time !== 'string' || typeof value.level !== 'string' || typeof value.msg !== 'string' || typeof value.service !== 'string' || value.env !== 'test'
        } catch {
          return true
        }
      })
      t.same(notJson, [], `${name}: every stdout line is a JSON log object with time, level, msg, service, env`)
    }
    t.ok(gateway.logs().every((line) => line.service === 'ai-gateway'))
    t.ok(upstreamAi.logs().every((line) => line.service === 'upstream-ai'))
  })
}
