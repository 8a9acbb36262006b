/**
 * POST /v1/ai/chat: a conversation under a use_case's system prompt,
 * answered as an SSE stream (default) or as JSON.
 *
 * The stream's headers go out with its first event, so a provider that
 * fails at once (429, 401, timeout before any text) still gets a plain
 * JSON error with its status. Once the stream began, a failure ends it
 * with `event: error`.
 */
import { errorEnvelope, toApiError } from '../../../common/src/errors.js'
import { sendJson } from '../../../common/src/http.js'
import { renderChat } from '../prompts.js'
import type { CompletionRequest, StreamEvent } from '../providers/provider.js'
import { answerMeta, errorMeta, recordUsage, type RequestScope } from '../request-scope.js'
import { startEventStream, writeEvent } from '../sse.js'
import { validateChatRequest } from '../validation.js'
import {
  CHAT_DEFAULT_TEMPERATURE, completionRequestFor, readJsonObject, templateFor, type AiRouteDeps
} from './ai-route.js'
import { recordFailure } from './failure.js'

export async function handleChat (deps: AiRouteDeps, scope: RequestScope): Promise<void> {
  const request = validateChatRequest(await readJsonObject(scope, deps.maxBodyBytes))
  const template = templateFor(deps, scope, request.useCase)
  scope.log.stream = request.stream
  const completionRequest = completionRequestFor(
    deps, scope, renderChat(template, request.messages, request.context), request.options, CHAT_DEFAULT_TEMPERATURE
  )
  if (!request.stream) {
    const completion = await deps.provider.complete(completionRequest, scope.signal)
    recordUsage(scope, completion.usage, completion.model)
    sendJson(scope.res, 200, {
      text: completion.text,
      usage: completion.usage,
      meta: answerMeta(scope, { provider: deps.provider.name, model: completion.model, useCase: template.useCase })
    })
    return
  }
  await streamChat(deps, scope, completionRequest, template.useCase)
}

async function streamChat (deps: AiRouteDeps, scope: RequestScope, request: CompletionRequest, useCase: string): Promise<void> {
  const events = deps.provider.stream(request, scope.signal)[Symbol.asyncIterator]()
  let finished = false
  try {
    // Errors before the first event propagate: the error boundary answers with JSON.
    let next: IteratorResult<StreamEvent> = await events.next()
    startEventStream(scope.res)
    try {
      while (next.done !== true) {
        const event = next.value
        if (event.type === 'delta') {
          await writeEvent(scope.res, 'delta', { text: event.text })
        } else {
          recordUsage(scope, event.usage, event.model)
          await writeEvent(scope.res, 'done', {
            usage: event.usage,
            meta: answerMeta(scope, { provider: deps.provider.name, model: event.model, useCase })
          })
        }
        next = await events.next()
      }
      finished = true
    } catch (error) {
      finished = true
      // The client is gone: nobody to tell.
      if (scope.signal.aborted) return
      const apiError = toApiError(error)
      recordFailure(scope, apiError)
      await writeEvent(scope.res, 'error', errorEnvelope(apiError, errorMeta(scope)))
    }
    scope.res.end()
  } finally {
    // Stopped early (client gone, write failed): let the provider cancel its call.
    if (!finished) await events.return?.().catch(() => {})
  }
}
