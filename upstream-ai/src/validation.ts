/**
 * Request validation for the two AI routes. Each problem is an
 * INVALID_REQUEST whose message names the field (and whose `field` says it
 * again for programs). For optional fields `null` counts as absent; unknown
 * top-level fields are ignored, unknown `options` are refused (a typo there
 * would silently change the answer).
 */
import { ApiError } from '../../common/src/errors.js'
import type { ChatMessage } from './providers/provider.js'
import type { JsonObject } from './prompts.js'

export interface GenerationOptions {
  /** 0..2 */
  temperature: number | undefined
  maxTokens: number | undefined
  model: string | undefined
}

export interface GenerateRequest {
  useCase: string
  input: JsonObject
  context: JsonObject | undefined
  options: GenerationOptions
}

export interface ChatRequest {
  useCase: string
  messages: ChatMessage[]
  context: JsonObject | undefined
  stream: boolean
  options: GenerationOptions
}

/** Largest `options.max_tokens` accepted. */
export const MAX_TOKENS_LIMIT = 131_072
/** Most messages in one chat request. */
export const MAX_MESSAGES = 1000
export const MODEL_NAME = /^[A-Za-z0-9._:/@-]{1,128}$/
const ROLES: ReadonlySet<string> = new Set(['system', 'user', 'assistant'])
const OPTION_KEYS: ReadonlySet<string> = new Set(['temperature', 'max_tokens', 'model'])

function invalid (field: string, message: string): ApiError {
  return new ApiError('INVALID_REQUEST', message, { extra: { field } })
}

function isObject (value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function isAbsent (value: unknown): value is null | undefined {
  return value === undefined || value === null
}

function requiredString (body: JsonObject, field: string): string {
  const value = body[field]
  if (isAbsent(value)) throw invalid(field, `${field} is required.`)
  if (typeof value !== 'string') throw invalid(field, `${field} must be a string.`)
  return value
}

function optionalObject (body: JsonObject, field: string): JsonObject | undefined {
  const value = body[field]
  if (isAbsent(value)) return undefined
  if (!isObject(value)) throw invalid(field, `${field} must be a JSON object.`)
  return value
}

export function validateOptions (value: unknown): GenerationOptions {
  const options: GenerationOptions = { temperature: undefined, maxTokens: undefined, model: undefined }
  if (isAbsent(value)) return options
  if (!isObject(value)) throw invalid('options', 'options must be a JSON object.')
  for (const key of Object.keys(value)) {
    if (!OPTION_KEYS.has(key)) {
      throw invalid(`options.${key}`, `options.${key} is not a known option (expected temperature, max_tokens or model).`)
    }
  }
  const { temperature, max_tokens: maxTokens, model } = value
  if (!isAbsent(temperature)) {
    if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) {
      throw invalid('options.temperature', 'options.temperature must be a number between 0 and 2.')
    }
    options.temperature = temperature
  }
  if (!isAbsent(maxTokens)) {
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > MAX_TOKENS_LIMIT) {
      throw invalid('options.max_tokens', `options.max_tokens must be an integer between 1 and ${MAX_TOKENS_LIMIT}.`)
    }
    options.maxTokens = maxTokens
  }
  if (!isAbsent(model)) {
    if (typeof model !== 'string' || !MODEL_NAME.test(model)) {
      throw invalid('options.model', 'options.model must be a model name: 1 to 128 letters, digits or . _ : / @ -.')
    }
    options.model = model
  }
  return options
}

export function validateGenerateRequest (body: JsonObject): GenerateRequest {
  const useCase = requiredString(body, 'use_case')
  const input = body.input
  if (isAbsent(input)) throw invalid('input', 'input is required.')
  if (!isObject(input)) throw invalid('input', 'input must be a JSON object.')
  return {
    useCase,
    input,
    context: optionalObject(body, 'context'),
    options: validateOptions(body.options)
  }
}

function validateMessages (value: unknown): ChatMessage[] {
  if (isAbsent(value)) throw invalid('messages', 'messages is required.')
  if (!Array.isArray(value)) throw invalid('messages', 'messages must be an array.')
  if (value.length === 0) throw invalid('messages', 'messages must hold at least one message.')
  if (value.length > MAX_MESSAGES) throw invalid('messages', `messages must hold at most ${MAX_MESSAGES} messages.`)
  return value.map((message: unknown, index) => {
    const field = `messages[${index}]`
    if (!isObject(message)) throw invalid(field, `${field} must be a JSON object.`)
    const { role, content } = message
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw invalid(`${field}.role`, `${field}.role must be one of system, user, assistant.`)
    }
    if (typeof content !== 'string') throw invalid(`${field}.content`, `${field}.content must be a string.`)
    return { role: role as ChatMessage['role'], content }
  })
}

export function validateChatRequest (body: JsonObject): ChatRequest {
  const messages = validateMessages(body.messages)
  const useCase = isAbsent(body.use_case) ? 'chat' : requiredString(body, 'use_case')
  const stream = body.stream
  if (!isAbsent(stream) && typeof stream !== 'boolean') throw invalid('stream', 'stream must be true or false.')
  return {
    useCase,
    messages,
    context: optionalObject(body, 'context'),
    stream: stream ?? true,
    options: validateOptions(body.options)
  }
}
