/**
 * What the two AI routes share: their dependencies, reading the JSON body,
 * finding the prompt template, and turning validated options into a
 * provider request.
 */
import { ApiError } from '../../../common/src/errors.js'
import { parseJsonObject, readBody } from '../../../common/src/http.js'
import type { Sanitizer } from '../../../common/src/sanitize.js'
import type { JsonObject, PromptRegistry, PromptTemplate } from '../prompts.js'
import type { ChatMessage, CompletionRequest, Provider } from '../providers/provider.js'
import { recordProviderStart, type RequestScope } from '../request-scope.js'
import type { GenerationOptions } from '../validation.js'

export interface AiRouteDeps {
  provider: Provider
  prompts: PromptRegistry
  maxBodyBytes: number
  sanitize: Sanitizer
}

/** Generate answers must be reproducible: the same input gives the same text, so the gateway may cache it. */
export const GENERATE_DEFAULT_TEMPERATURE = 0
/** Conversation reads better with a little variety; chat answers are not meant to be cached. */
export const CHAT_DEFAULT_TEMPERATURE = 0.7

export async function readJsonObject (scope: RequestScope, maxBodyBytes: number): Promise<JsonObject> {
  return parseJsonObject(await readBody(scope.req, maxBodyBytes))
}

export function templateFor (deps: AiRouteDeps, scope: RequestScope, useCase: string): PromptTemplate {
  scope.log.use_case = deps.sanitize(useCase)
  const template = deps.prompts.get(useCase)
  if (template === undefined) {
    throw new ApiError('UNKNOWN_USE_CASE', `use_case names no prompt template; known use cases: ${deps.prompts.useCases().join(', ')}.`, {
      extra: { field: 'use_case' }
    })
  }
  return template
}

export function completionRequestFor (
  deps: AiRouteDeps,
  scope: RequestScope,
  messages: ChatMessage[],
  options: GenerationOptions,
  defaultTemperature: number
): CompletionRequest {
  const model = options.model ?? deps.provider.defaultModel
  scope.log.provider = deps.provider.name
  scope.log.model = model
  // Both routes call the provider right after building its request.
  recordProviderStart(scope)
  return { messages, model, temperature: options.temperature ?? defaultTemperature, maxTokens: options.maxTokens }
}
