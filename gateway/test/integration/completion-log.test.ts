// Completion log: exactly one `request completed` line per /v1/ai request whatever the outcome, with ids, user, use case, route, status and timings, and never a body, token, cookie or secret.
import t from 'tap'
import { startUpstream, echo } from '../helpers/upstream.js'
import { call, completionLine, completionLines, startGateway, token, TEST_SECRET } from '../helpers/gateway.js'

t.test('completion log', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url })
  const jwt = await token({ sub: 'frank' })
  const secretPrompt = 'my very private birth chart details'
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

  const ok = await call(gateway.url, '/v1/ai/generate', {
    headers: { authorization: `Bearer ${jwt}`, cookie: 'session=cookie-value-123', 'x-request-id': 'log-ok', traceparent },
    body: { use_case: 'natal_chart_summary', input: { prompt: secretPrompt } }
  })
  t.equal(ok.status, 200)
  const line = await completionLine(gateway, 'log-ok')
  t.match(line, {
    level: 'info',
    service: 'ai-gateway',
    request_id: 'log-ok',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    user_id: 'frank',
    use_case: 'natal_chart_summary',
    route: '/v1/ai/generate',
    method: 'POST',
    http_status: 200,
    status: 'success',
    stream: false,
    client_aborted: false
  })
  t.notOk('error_type' in line)
  t.type(line.latency_ms, 'number')
  t.type(line.upstream_latency_ms, 'number')
  t.ok(line.latency_ms >= line.upstream_latency_ms, 'the upstream time is part of the total')

  const refused = await call(gateway.url, '/v1/ai/chat', { headers: { 'x-request-id': 'log-401' }, body: { messages: [] } })
  t.equal(refused.status, 401)
  t.match(await completionLine(gateway, 'log-401'), {
    http_status: 401, status: 'error', error_type: 'UNAUTHORIZED', user_id: null, route: '/v1/ai/chat', upstream_latency_ms: null
  })

  await call(gateway.url, '/v1/ai/nope', { headers: { 'x-request-id': 'log-404' }, body: {} })
  t.match(await completionLine(gateway, 'log-404'), { http_status: 404, error_type: 'NOT_FOUND', route: 'unmatched' })

  await call(gateway.url, '/v1/ai/generate', { method: 'GET', headers: { 'x-request-id': 'log-405' } })
  t.match(await completionLine(gateway, 'log-405'), { http_status: 405, error_type: 'METHOD_NOT_ALLOWED', method: 'GET' })

  await call(gateway.url, '/v1/ai/generate', { headers: { authorization: `Bearer ${jwt}`, 'x-request-id': 'log-400', 'content-type': 'application/json' }, body: '{oops' })
  t.match(await completionLine(gateway, 'log-400'), { http_status: 400, error_type: 'INVALID_REQUEST', user_id: 'frank' })

  await call(gateway.url, '/other', { headers: { 'x-request-id': 'not-ai' } })
  await call(gateway.url, '/health', { headers: { 'x-request-id': 'not-ai-health' } })

  t.test('one line per /v1/ai request, none for other paths', async (t) => {
    const ids = completionLines(gateway).map((entry) => entry.request_id)
    t.same(ids.sort(), ['log-400', 'log-401', 'log-404', 'log-405', 'log-ok'])
  })

  t.test('no token, cookie, body or secret in any log line', async (t) => {
    const all = gateway.stdout.join('\n') + gateway.stderr.join('\n')
    for (const secret of [jwt, jwt.split('.')[2]!, 'cookie-value-123', secretPrompt, TEST_SECRET]) {
      t.notOk(all.includes(secret), `not logged: ${secret.slice(0, 12)}…`)
    }
  })
})
