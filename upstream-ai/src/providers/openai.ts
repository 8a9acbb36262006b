/**
 * The OpenAI-compatible provider: Chat Completions (`POST
 * ${baseUrl}/chat/completions`) through an injected undici dispatcher, so
 * connections are pooled and kept alive across requests and closed by
 * whoever created the dispatcher. Works with OpenAI, vLLM, Ollama and
 * llama.cpp servers.
 *
 * One deadline covers the whole call, a stream included. The caller's
 * signal (the client went away) cancels the request, which closes the
 * connection to the provider so no more tokens are generated for nobody.
 *
 * Nothing the provider says in an error body reaches a log or the client:
 * only its HTTP status and an identifier-like error code are kept.
 */
import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import { ApiError } from '../../../common/src/errors.js'
import { createSseParser } from './sse-parser.js'
import {
  providerFailure, usageOf,
  type ChatMessage, type Completion, type CompletionRequest, type Provider, type StreamEvent, type Usage
} from './provider.js'

export interface OpenAiProviderOptions {
  /** e.g. https://api.openai.com/v1 */
  baseUrl: URL
  apiKey: string
  defaultModel: string
  /** Deadline for the whole call, in milliseconds. */
  timeoutMs: number
  /** A pooled, keep-alive dispatcher (undici Agent or Pool), owned by the caller. */
  dispatcher: Dispatcher
  /** Largest provider answer read, in bytes. @default 8 MiB */
  maxResponseBytes?: number
  /** For retry-after dates. @default Date.now */
  now?: () => number
}

type BodyReadable = Dispatcher.ResponseData['body']

const MAX_ERROR_BODY_BYTES = 64 * 1024
const SAFE_CODE = /^[A-Za-z0-9_.-]{1,64}$/
const SAFE_MODEL = /^[A-Za-z0-9._:/@-]{1,128}$/

export function createOpenAiProvider (options: OpenAiProviderOptions): Provider {
  const { apiKey, defaultModel, timeoutMs, dispatcher } = options
  const maxResponseBytes = options.maxResponseBytes ?? 8 * 1024 * 1024
  const now = options.now ?? Date.now
  const origin = options.baseUrl.origin
  const path = `${options.baseUrl.pathname.replace(/\/+$/, '')}/chat/completions`
  const timeoutText = `${timeoutMs / 1000} s`

  const send = async (request: CompletionRequest, stream: boolean, signal: AbortSignal): Promise<Dispatcher.ResponseData> => {
    const payload: Record<string, unknown> = {
      model: request.model,
      messages: request.messages.map(({ role, content }: ChatMessage) => ({ role, content })),
      temperature: request.temperature,
      stream
    }
    // `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible server knows it.
    if (request.maxTokens !== undefined) payload.max_tokens = request.maxTokens
    // Without this the stream carries no token counts.
    if (stream) payload.stream_options = { include_usage: true }
    const response = await dispatcher.request({
      origin,
      path,
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'application/json',
        accept: stream ? 'text/event-stream' : 'application/json'
      },
      body: JSON.stringify(payload),
      signal,
      // The deadline below covers the whole call; these are only a backstop.
      headersTimeout: timeoutMs + 1000,
      bodyTimeout: timeoutMs + 1000
    })
    if (response.statusCode < 200 || response.statusCode >= 300) {
      throw statusFailure(response.statusCode, response.headers, await readErrorCode(response.body), now())
    }
    return response
  }

  const fail = (error: unknown, deadline: Deadline): unknown => {
    if (deadline.timedOut()) {
      return providerFailure('UPSTREAM_TIMEOUT', `The AI provider did not answer within ${timeoutText}.`)
    }
    // The client went away: the caller knows from its own signal.
    if (deadline.callerAborted()) return error
    if (error instanceof ApiError) return error
    const code = (error as { code?: unknown } | null)?.code
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      return providerFailure('UPSTREAM_TIMEOUT', `The AI provider did not answer within ${timeoutText}.`, { network_error_code: code })
    }
    return providerFailure('PROVIDER_ERROR', 'Could not reach the AI provider.',
      typeof code === 'string' && SAFE_CODE.test(code) ? { network_error_code: code } : {})
  }

  return {
    name: 'openai',
    defaultModel,

    async complete (request, signal) {
      const deadline = startDeadline(timeoutMs, signal)
      try {
        const response = await send(request, false, deadline.signal)
        return parseCompletion(await readText(response.body, maxResponseBytes), request.model)
      } catch (error) {
        throw fail(error, deadline)
      } finally {
        deadline.clear()
      }
    },

    async * stream (request, signal): AsyncGenerator<StreamEvent> {
      const deadline = startDeadline(timeoutMs, signal)
      let body: BodyReadable | undefined
      let finished = false
      try {
        const response = await send(request, true, deadline.signal)
        body = response.body
        // Some servers ignore `stream: true` and answer with one JSON completion.
        if (isJson(response.headers['content-type'])) {
          const completion = parseCompletion(await readText(body, maxResponseBytes), request.model)
          finished = true
          if (completion.text !== '') yield { type: 'delta', text: completion.text }
          yield { type: 'done', usage: completion.usage, model: completion.model }
          return
        }
        const state: ChunkState = { usage: undefined, model: request.model, finishReason: false }
        const decoder = new TextDecoder('utf-8')
        const parser = createSseParser()
        let received = 0
        let sawDone = false
        reading: for await (const chunk of body as AsyncIterable<Buffer>) {
          received += chunk.length
          if (received > maxResponseBytes) throw providerFailure('PROVIDER_ERROR', 'The AI provider answered with too much data.')
          for (const event of parser.push(decoder.decode(chunk, { stream: true }))) {
            if (event.data === '[DONE]') { sawDone = true; break reading }
            const text = readChunk(event.data, state)
            if (text !== '') yield { type: 'delta', text }
          }
        }
        if (!sawDone) {
          for (const event of parser.push(decoder.decode()).concat(parser.end())) {
            if (event.data === '[DONE]') { sawDone = true; break }
            const text = readChunk(event.data, state)
            if (text !== '') yield { type: 'delta', text }
          }
        }
        // Servers that skip `[DONE]` still mark the end with a finish_reason; without either, the stream was cut.
        if (!sawDone && !state.finishReason) {
          throw providerFailure('PROVIDER_ERROR', 'The AI provider\'s stream ended before it was complete.')
        }
        finished = true
        yield { type: 'done', usage: state.usage ?? usageOf(0, 0), model: state.model }
      } catch (error) {
        throw fail(error, deadline)
      } finally {
        deadline.clear()
        if (body !== undefined && !body.destroyed) {
          // After [DONE] read what is left so the connection can be reused; otherwise cancel the call.
          if (finished) body.dump({ limit: 64 * 1024 }).catch(() => {})
          else body.destroy()
        }
      }
    }
  }
}

interface Deadline {
  signal: AbortSignal
  timedOut: () => boolean
  callerAborted: () => boolean
  clear: () => void
}

function startDeadline (timeoutMs: number, callerSignal: AbortSignal): Deadline {
  const timeout = new AbortController()
  const timer = setTimeout(() => timeout.abort(new Error('deadline exceeded')), timeoutMs)
  return {
    signal: AbortSignal.any([callerSignal, timeout.signal]),
    timedOut: () => timeout.signal.aborted && !callerSignal.aborted,
    callerAborted: () => callerSignal.aborted,
    clear: () => clearTimeout(timer)
  }
}

function isJson (contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && /^application\/(?:[\w.+-]+\+)?json/i.test(contentType)
}

async function readText (body: BodyReadable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = []
  let received = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    received += chunk.length
    if (received > maxBytes) {
      body.destroy()
      throw providerFailure('PROVIDER_ERROR', 'The AI provider answered with too much data.')
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** Reads an error body only for its `error.code` / `error.type`; the rest is dropped unread by anyone. */
async function readErrorCode (body: BodyReadable): Promise<string | undefined> {
  let text: string
  try {
    text = await readText(body, MAX_ERROR_BODY_BYTES)
  } catch {
    return undefined
  }
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; type?: unknown } } | null
    const code = parsed?.error?.code ?? parsed?.error?.type
    return typeof code === 'string' && SAFE_CODE.test(code) ? code : undefined
  } catch {
    return undefined
  }
}

function statusFailure (status: number, headers: IncomingHttpHeaders, code: string | undefined, now: number): ApiError {
  const detail = { provider_status: status, ...(code === undefined ? {} : { provider_error_code: code }) }
  if (status === 401 || status === 403) {
    return providerFailure('PROVIDER_ERROR', `The AI provider refused our credentials (HTTP ${status}).`, detail)
  }
  if (status === 429) {
    const retryAfterMs = retryAfterMsFrom(headers, now)
    if (retryAfterMs === undefined) return providerFailure('PROVIDER_RATE_LIMITED', 'The AI provider is rate limiting requests.', detail)
    return providerFailure('PROVIDER_RATE_LIMITED', 'The AI provider is rate limiting requests.', detail, {
      extra: { retry_after_ms: retryAfterMs },
      headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) }
    })
  }
  if (status >= 500) return providerFailure('PROVIDER_ERROR', `The AI provider failed (HTTP ${status}).`, detail)
  return providerFailure('PROVIDER_ERROR', `The AI provider rejected the request (HTTP ${status}).`, detail)
}

/** `retry-after-ms` (OpenAI's, milliseconds) wins over `retry-after` (seconds or an HTTP date). */
export function retryAfterMsFrom (headers: IncomingHttpHeaders, now: number): number | undefined {
  const first = (value: string | string[] | undefined): string | undefined => Array.isArray(value) ? value[0] : value
  const ms = first(headers['retry-after-ms'])?.trim()
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms))
  const after = first(headers['retry-after'])?.trim()
  if (after === undefined || after === '') return undefined
  if (/^\d+(\.\d+)?$/.test(after)) return Math.ceil(Number(after) * 1000)
  const date = Date.parse(after)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

function malformed (what: string): ApiError {
  return providerFailure('PROVIDER_ERROR', `The AI provider answered with ${what}.`)
}

function parseCompletion (text: string, requestedModel: string): Completion {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw malformed('malformed JSON')
  }
  if (!isObject(value)) throw malformed('malformed JSON')
  const choices = value.choices
  if (!Array.isArray(choices) || choices.length === 0) throw malformed('no choices')
  const first: unknown = choices[0]
  const message = isObject(first) ? first.message : undefined
  if (!isObject(message)) throw malformed('a choice without a message')
  // A refusal comes with `content: null` and the reason in `refusal`.
  const content = typeof message.content === 'string' ? message.content : message.refusal
  if (typeof content !== 'string') throw malformed('a message without text')
  return { text: content, usage: parseUsage(value.usage) ?? usageOf(0, 0), model: modelOf(value.model, requestedModel) }
}

interface ChunkState {
  usage: Usage | undefined
  model: string
  finishReason: boolean
}

/** One `data:` payload of a stream: returns its text (maybe empty) and records usage, model and the end. */
function readChunk (data: string, state: ChunkState): string {
  let value: unknown
  try {
    value = JSON.parse(data)
  } catch {
    throw malformed('a malformed stream chunk')
  }
  if (!isObject(value)) throw malformed('a malformed stream chunk')
  // vLLM and others report a failure inside the stream as `data: {"error": {...}}`.
  if (value.error !== undefined && value.error !== null) {
    const error = isObject(value.error) ? value.error : {}
    const code = error.code ?? error.type
    throw providerFailure('PROVIDER_ERROR', 'The AI provider failed during the stream.',
      typeof code === 'string' && SAFE_CODE.test(code) ? { provider_error_code: code } : {})
  }
  const usage = parseUsage(value.usage)
  if (usage !== undefined) state.usage = usage
  state.model = modelOf(value.model, state.model)
  const choices = value.choices
  if (!Array.isArray(choices)) {
    if (usage === undefined) throw malformed('a stream chunk without choices')
    return ''
  }
  const first: unknown = choices[0]
  if (!isObject(first)) return ''
  if (typeof first.finish_reason === 'string') state.finishReason = true
  const delta = first.delta
  return isObject(delta) && typeof delta.content === 'string' ? delta.content : ''
}

function parseUsage (value: unknown): Usage | undefined {
  if (!isObject(value)) return undefined
  const count = (raw: unknown): number => typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0 ? raw : 0
  const input = count(value.prompt_tokens)
  const output = count(value.completion_tokens)
  const total = count(value.total_tokens)
  return { input_tokens: input, output_tokens: output, total_tokens: total > 0 ? total : input + output }
}

function modelOf (value: unknown, fallback: string): string {
  return typeof value === 'string' && SAFE_MODEL.test(value) ? value : fallback
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}
