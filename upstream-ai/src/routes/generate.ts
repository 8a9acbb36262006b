/** POST /v1/ai/generate: one use_case template, rendered from input and context, answered as JSON. */
import { sendJson } from '../../../common/src/http.js'
import { renderGenerate } from '../prompts.js'
import { answerMeta, recordUsage, type RequestScope } from '../request-scope.js'
import { validateGenerateRequest } from '../validation.js'
import {
  completionRequestFor, GENERATE_DEFAULT_TEMPERATURE, readJsonObject, templateFor, type AiRouteDeps
} from './ai-route.js'

export async function handleGenerate (deps: AiRouteDeps, scope: RequestScope): Promise<void> {
  const request = validateGenerateRequest(await readJsonObject(scope, deps.maxBodyBytes))
  const template = templateFor(deps, scope, request.useCase)
  scope.log.stream = false
  const completionRequest = completionRequestFor(
    deps, scope, renderGenerate(template, request.input, request.context), request.options, GENERATE_DEFAULT_TEMPERATURE
  )
  const completion = await deps.provider.complete(completionRequest, scope.signal)
  recordUsage(scope, completion.usage, completion.model)
  sendJson(scope.res, 200, {
    text: completion.text,
    usage: completion.usage,
    meta: answerMeta(scope, { provider: deps.provider.name, model: completion.model, useCase: template.useCase })
  })
}
