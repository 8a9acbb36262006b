// Privacy across the whole path — nginx (the shipped config), the gateway and upstream-ai on its real OpenAI provider against a fake OpenAI-compatible server, both services at LOG_LEVEL=debug: a canary in birth_data at every depth and in arrays, in message contents, in a provider error that echoes the prompt, in the provider key (echoed back by the provider too), in bearer tokens valid and not, and in bodies refused by nginx or the gateway, never appears in any log: the gateway's and upstream-ai's stdout and stderr, nginx's access logs (file and stdout) and its error log.
import t from 'tap'
import { startFakeOpenAi, streamChunks, completionBody, type RecordedRequest } from '../../upstream-ai/test/helpers/fake-openai.js'
import { completionLine as upstreamCompletionLine, openAiEnv, startUpstreamAi } from '../../upstream-ai/test/helpers/upstream.js'
import { completionLine, startGateway, token } from '../../gateway/test/helpers/gateway.js'
import { waitFor } from '../../common/testkit/ports.js'
import { call, timedStream } from './helpers/http.js'
import { startNginx } from './helpers/nginx.js'
import { startStubApi } from './helpers/stack.js'

const CANARY = 'CANARY5e1b7d'
const PROVIDER_KEY = `sk-${CANARY}-provider-key-0123456789`
const USAGE = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 }

/** The prompt text upstream-ai sent the provider, as one string. */
const promptOf = (request: RecordedRequest): string => JSON.stringify(request.body?.messages ?? '')

t.test('no canary in any log of nginx, the gateway or upstream-ai', async (t) => {
  const fake = await startFakeOpenAi(t)
  fake.answer((request) => {
    const prompt = promptOf(request)
    // A provider that echoes the prompt in its error, as some do for content-policy refusals.
    if (prompt.includes('please-refuse')) {
      return { kind: 'json', status: 400, body: { error: { message: `Your prompt was refused: ${prompt}`, type: 'invalid_request_error', param: prompt, code: 'content_policy_violation' } } }
    }
    // One that echoes the key it was given (OpenAI masks it; this one does not).
    if (prompt.includes('bad-key')) {
      return { kind: 'json', status: 401, body: { error: { message: `Incorrect API key provided: ${String(request.headers.authorization)}`, type: 'invalid_request_error', code: 'invalid_api_key' } } }
    }
    // Answers that quote the question back: the canary is in what the client receives, never in a log.
    if (request.body?.stream === true) return { kind: 'sse', chunks: streamChunks([`You asked about ${CANARY}`, ' and more.'], USAGE) }
    return { kind: 'json', body: completionBody(`About ${CANARY}: a fine day.`, USAGE) }
  })
  const upstreamAi = await startUpstreamAi(t, { ...openAiEnv(fake.baseUrl), OPENAI_API_KEY: PROVIDER_KEY, LOG_LEVEL: 'debug' })
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstreamAi.url, AI_ENGINE_CACHE_ENABLED: 'true', LOG_LEVEL: 'debug' })
  const api = await startStubApi(t)
  const nginx = await startNginx(t, { gateway: `127.0.0.1:${gateway.port}`, api: `127.0.0.1:${api.port}` })
  const web = nginx.url

  // A valid token that carries the canary in a claim, and a bearer value that is the canary itself.
  const jwt = await token({ sub: 'privacy-user', claims: { note: `${CANARY}-claim`, email: `${CANARY}@example.com` } })
  const headers = { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }
  const birth = (depth: string): Record<string, unknown> => ({ date: `${CANARY}-${depth}-1990-01-01`, time: '04:30', place: `${CANARY}-${depth}-Lyon` })
  const input = {
    sign: 'leo',
    birth_data: birth('top'),
    person: { birth_data: birth('nested'), family: { partner: { birth_data: birth('deeper'), notes: [`${CANARY}-note-in-array`] } } },
    people: [{ birth_data: birth('array-0') }, [{ birth_data: birth('array-in-array') }, `${CANARY}-bare-in-array`]],
    free_text: `${CANARY}-free text with no sensitive key name`
  }
  const post = async (path: string, body: unknown, id: string, extra: Record<string, string> = {}): Promise<number> =>
    (await call(web, path, { method: 'POST', headers: { ...headers, 'x-request-id': id, ...extra }, body: typeof body === 'string' ? body : JSON.stringify(body) })).status

  t.equal(await post('/v1/ai/generate', { use_case: 'natal_chart_summary', input, context: { birth_data: birth('context') } }, 'privacy-generate'), 200)
  t.equal(await post('/v1/ai/generate', { use_case: 'natal_chart_summary', input, context: { birth_data: birth('context') } }, 'privacy-hit'), 200, 'the same again: a cache hit')
  const stream = await timedStream(web, '/v1/ai/chat', {
    headers: { ...headers, 'x-request-id': 'privacy-stream' },
    body: JSON.stringify({ messages: [{ role: 'system', content: `${CANARY}-system` }, { role: 'user', content: `${CANARY}-question ${JSON.stringify(input)}` }], context: { birth_data: birth('chat') } })
  })
  t.equal(stream.status, 200)
  t.ok(stream.text.includes(CANARY), 'the answer itself quotes the canary back to its client')
  t.equal(await post('/v1/ai/chat', { stream: false, messages: [{ role: 'user', content: `${CANARY} please-refuse ${JSON.stringify(input)}` }] }, 'privacy-refused'), 502, 'the provider refused, echoing the prompt: PROVIDER_ERROR')
  t.equal(await post('/v1/ai/chat', { stream: false, messages: [{ role: 'user', content: `${CANARY} bad-key` }] }, 'privacy-bad-key'), 502, 'the provider refused the key, echoing it')
  t.equal(await post('/v1/ai/generate', { use_case: 'natal_chart_summary', input }, 'privacy-401', { authorization: `Bearer ${CANARY}.${CANARY}.${CANARY}` }), 401)
  t.equal(await post('/v1/ai/generate', `{"use_case":"natal_chart_summary","input":{"birth_data":"${CANARY}-truncated`, 'privacy-400'), 400)
  t.equal(await post('/v1/ai/generate', { use_case: 'natal_chart_summary', input: { birth_data: birth('dup'), birth_data_2: CANARY }, options: { temperature: `${CANARY}-not-a-number` } }, 'privacy-400-field'), 400)
  t.equal(await post('/v1/ai/generate', { use_case: 'natal_chart_summary', input: { birth_data: `${CANARY}-${'x'.repeat(1_100_000)}` } }, 'privacy-413'), 413, 'refused by nginx itself')

  for (const id of ['privacy-generate', 'privacy-hit', 'privacy-stream', 'privacy-refused', 'privacy-bad-key', 'privacy-401', 'privacy-400', 'privacy-400-field']) await completionLine(gateway, id)
  for (const id of ['privacy-generate', 'privacy-stream', 'privacy-refused', 'privacy-bad-key']) await upstreamCompletionLine(upstreamAi, id)
  await waitFor(() => nginx.accessLog().some((line) => line.request_id === 'privacy-413') || undefined, { what: 'nginx\'s line for the 413' })
  t.ok(fake.requests.some((request) => promptOf(request).includes(CANARY)), 'the canary did reach the provider (the test is not vacuous)')
  t.ok(fake.requests.every((request) => request.headers.authorization === `Bearer ${PROVIDER_KEY}`), 'and so did the key')

  const logs: Array<[string, string]> = [
    ['gateway stdout', gateway.stdout.join('\n')],
    ['gateway stderr', gateway.stderr.join('\n')],
    ['upstream-ai stdout', upstreamAi.stdout.join('\n')],
    ['upstream-ai stderr', upstreamAi.stderr.join('\n')],
    ['nginx access.json', JSON.stringify(nginx.accessLog())],
    ['nginx access log (stdout)', JSON.stringify(nginx.stdoutLog())],
    ['nginx error log', nginx.errorLog()]
  ]
  t.ok(nginx.errorLog().includes('client intended to send too large body'), 'nginx\'s error log has lines to check')
  t.ok(upstreamAi.logs().some((line) => line.provider_status === 400) && upstreamAi.logs().some((line) => line.provider_status === 401), 'upstream-ai logged both provider errors')
  for (const [name, text] of logs) {
    if (!name.endsWith('stderr')) t.ok(text.length > 0, `${name} is not empty`)
    t.notOk(text.includes(CANARY), `${name}: no canary`)
    t.notOk(text.includes(jwt.split('.')[2]!), `${name}: no token signature`)
    t.notOk(text.includes('provider-key'), `${name}: no provider key`)
  }
})
