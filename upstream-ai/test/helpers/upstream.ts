/** Starts the built upstream-ai (dist/) as a child process on a loopback port 0. */
import { waitFor } from '../../../common/testkit/ports.js'
import { startService, type RunningService, type Teardown } from '../../../common/testkit/process.js'

export const UPSTREAM_AI_SCRIPT = 'dist/upstream-ai/src/main.js'

/** A key-shaped secret the tests look for everywhere it must not appear. */
export const SECRET_KEY = 'sk-test-SECRET-4f9d2c71b8a04e6c'

export async function startUpstreamAi (t: Teardown, env: Record<string, string | undefined> = {}): Promise<RunningService> {
  // Start from a clean slate: the developer's own provider settings must not leak in.
  return await startService(t, UPSTREAM_AI_SCRIPT, {
    AI_PROVIDER: undefined,
    OPENAI_API_KEY: undefined,
    OPENAI_BASE_URL: undefined,
    OPENAI_MODEL_DEFAULT: undefined,
    AI_ENGINE_TIMEOUT_SECONDS: undefined,
    MOCK_PROVIDER_LATENCY_MS: undefined,
    AI_UPSTREAM_MAX_BODY_BYTES: undefined,
    ENVIRONMENT: 'test',
    ...env
  })
}

/** The upstream-ai settings for talking to a fake OpenAI server. */
export function openAiEnv (baseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return { AI_PROVIDER: 'openai', OPENAI_API_KEY: SECRET_KEY, OPENAI_BASE_URL: baseUrl, ...extra }
}

/** Waits for the `request completed` log line of one request. */
export async function completionLine (service: RunningService, requestId: string): Promise<Record<string, unknown>> {
  return await waitFor(
    () => service.logs().find((line) => line.msg === 'request completed' && line.request_id === requestId),
    { what: `the completion line of ${requestId}` }
  )
}
