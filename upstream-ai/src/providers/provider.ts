/**
 * The Provider interface: what upstream-ai needs from an LLM backend. Two
 * implementations sit beside it: `openai.ts` (any OpenAI-compatible Chat
 * Completions API, through an injected undici dispatcher) and `mock.ts`
 * (deterministic text, no network).
 *
 * Failures are ApiErrors of the provider types (PROVIDER_ERROR,
 * PROVIDER_RATE_LIMITED, UPSTREAM_TIMEOUT). When `signal` aborts (the client
 * went away) the call stops and rejects; the caller knows why from its own
 * signal, so the rejection value does not matter.
 */
import { ApiError, type ErrorExtra, type ErrorType } from '../../../common/src/errors.js'

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface CompletionRequest {
  messages: readonly ChatMessage[]
  model: string
  /** 0..2 */
  temperature: number
  /** Upper bound on generated tokens; the provider's own default when undefined. */
  maxTokens: number | undefined
}

export interface Usage {
  input_tokens: number
  output_tokens: number
  total_tokens: number
}

export interface Completion {
  text: string
  usage: Usage
  /** The model that answered, as the provider names it. */
  model: string
}

/** A stream is any number of deltas, then exactly one `done`. */
export type StreamEvent =
  | { type: 'delta'; text: string }
  | { type: 'done'; usage: Usage; model: string }

export interface Provider {
  readonly name: 'openai' | 'mock'
  readonly defaultModel: string
  complete: (request: CompletionRequest, signal: AbortSignal) => Promise<Completion>
  stream: (request: CompletionRequest, signal: AbortSignal) => AsyncIterable<StreamEvent>
}

/**
 * What is safe to log about a provider failure: numbers and identifier-like
 * codes only, never the provider's message or body (it may echo our request
 * or our key).
 */
export interface ProviderFailureDetail {
  provider_status?: number
  provider_error_code?: string
  network_error_code?: string
}

/** A provider failure as an ApiError whose `cause` is the loggable detail. */
export function providerFailure (
  type: Extract<ErrorType, 'PROVIDER_ERROR' | 'PROVIDER_RATE_LIMITED' | 'UPSTREAM_TIMEOUT'>,
  message: string,
  detail: ProviderFailureDetail = {},
  options: { extra?: ErrorExtra; headers?: Record<string, string> } = {}
): ApiError {
  return new ApiError(type, message, { ...options, cause: detail })
}

export function isProviderFailureDetail (value: unknown): value is ProviderFailureDetail {
  if (value === null || typeof value !== 'object' || value instanceof Error) return false
  return Object.keys(value).every((key) => ['provider_status', 'provider_error_code', 'network_error_code'].includes(key))
}

export function usageOf (input: number, output: number): Usage {
  return { input_tokens: input, output_tokens: output, total_tokens: input + output }
}
