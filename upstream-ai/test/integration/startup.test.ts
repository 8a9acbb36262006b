// upstream-ai start-up and shutdown: bad configuration exits non-zero naming the variable; SIGTERM lets in-flight requests finish and exits 0.
import t from 'tap'
import { spawnProcess, type Teardown } from '../../../common/testkit/process.js'
import { begin, send } from '../helpers/client.js'
import { startFakeOpenAi } from '../helpers/fake-openai.js'
import { openAiEnv, startUpstreamAi, UPSTREAM_AI_SCRIPT } from '../helpers/upstream.js'

// Independent processes: run the cases side by side.
t.jobs = 3

async function runToExit (t: Teardown, env: Record<string, string | undefined>): Promise<{ code: number | null; output: string }> {
  const running = spawnProcess(t, process.execPath, [UPSTREAM_AI_SCRIPT], {
    env: { HOST: '127.0.0.1', PORT: '0', AI_PROVIDER: undefined, OPENAI_API_KEY: undefined, ENVIRONMENT: 'test', ...env }
  })
  const timer = setTimeout(() => running.child.kill('SIGKILL'), 10_000)
  const { code } = await running.exited
  clearTimeout(timer)
  return { code, output: [...running.stdout, ...running.stderr].join('\n') }
}

t.test('AI_PROVIDER=openai without OPENAI_API_KEY exits non-zero naming OPENAI_API_KEY', async (t) => {
  const { code, output } = await runToExit(t, { AI_PROVIDER: 'openai' })
  t.not(code, 0)
  t.not(code, null)
  t.match(output, /OPENAI_API_KEY/)
  t.notMatch(output, /listening/)
})

t.test('PORT=abc exits non-zero naming PORT', async (t) => {
  const { code, output } = await runToExit(t, { PORT: 'abc' })
  t.not(code, 0)
  t.match(output, /PORT="abc": expected an integer/)
})

t.test('every bad value is reported at once', async (t) => {
  const { code, output } = await runToExit(t, { AI_PROVIDER: 'claude', AI_ENGINE_TIMEOUT_SECONDS: '-1', OPENAI_BASE_URL: 'ftp://x' })
  t.not(code, 0)
  t.match(output, /AI_PROVIDER="claude": expected one of openai, mock/)
  t.match(output, /AI_ENGINE_TIMEOUT_SECONDS="-1"/)
  t.match(output, /OPENAI_BASE_URL="ftp:\/\/x"/)
})

t.test('ENVIRONMENT=production does not fall back to the mock silently', async (t) => {
  const { code, output } = await runToExit(t, { ENVIRONMENT: 'production' })
  t.not(code, 0)
  t.match(output, /OPENAI_API_KEY/)
})

t.test('SIGTERM: the in-flight request finishes, new connections are refused, exit 0', async (t) => {
  const fake = await startFakeOpenAi(t)
  const upstream = await startUpstreamAi(t, openAiEnv(fake.baseUrl, { AI_UPSTREAM_SHUTDOWN_GRACE_SECONDS: '10' }))
  const { completionBody } = await import('../helpers/fake-openai.js')
  fake.answer({ kind: 'json', delayMs: 600, body: completionBody('finished in time', { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }) })
  const pending = begin(`${upstream.url}/v1/ai/generate`, { body: { use_case: 'chat', input: { message: 'x' } } })
  const { waitFor } = await import('../../../common/testkit/ports.js')
  await waitFor(() => fake.requests[0], { what: 'the provider call' })
  const exited = upstream.stop('SIGTERM')
  const response = await pending.response
  t.equal(response.statusCode, 200, 'the in-flight request got its answer')
  const chunks: Buffer[] = []
  for await (const chunk of response) chunks.push(chunk as Buffer)
  t.equal(JSON.parse(Buffer.concat(chunks).toString('utf8')).text, 'finished in time')
  const { code, signal } = await exited
  t.equal(code, 0)
  t.equal(signal, null)
  const messages = upstream.logs().map((line) => line.msg)
  t.ok(messages.includes('shutting down'))
  t.ok(messages.includes('stopped'))
  await t.rejects(send(`${upstream.url}/health/live`), 'no longer accepting connections')
})
