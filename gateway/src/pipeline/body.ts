/**
 * Body: reads the request body within its byte limit and checks only what
 * the gateway itself needs (a JSON object; `use_case` a string and
 * `options.temperature` a number when present; later the cache keys on
 * them). upstream-ai validates the rest. The bytes read are kept as they
 * are: they are what upstream-ai receives, never re-serialised.
 */
import { ApiError } from '../../../common/src/errors.js'
import { isJsonContentType, parseJsonObject, readBody } from '../../../common/src/http.js'
import type { NamedStage } from './stage.js'

export interface BodyOptions {
  /** Largest accepted body, in bytes. @default 1048576 */
  maxBodyBytes: number
}

function invalid (field: string, message: string): ApiError {
  return new ApiError('INVALID_REQUEST', message, { extra: { field } })
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** The few fields the gateway reads; `null` counts as absent, as in upstream-ai. */
export function checkGatewayFields (json: Record<string, unknown>): void {
  const useCase = json.use_case
  if (useCase !== undefined && useCase !== null && typeof useCase !== 'string') {
    throw invalid('use_case', 'use_case must be a string.')
  }
  const options = json.options
  if (isObject(options)) {
    const temperature = options.temperature
    if (temperature !== undefined && temperature !== null && (typeof temperature !== 'number' || !Number.isFinite(temperature))) {
      throw invalid('options.temperature', 'options.temperature must be a number.')
    }
  }
}

export function createBodyStage (options: BodyOptions): NamedStage {
  return {
    name: 'body',
    run: async (ctx, req) => {
      if (!isJsonContentType(req.headers['content-type'])) {
        throw new ApiError('UNSUPPORTED_MEDIA_TYPE', 'The request body must be application/json.')
      }
      const raw = await readBody(req, options.maxBodyBytes)
      const json = parseJsonObject(raw)
      checkGatewayFields(json)
      ctx.body = { raw, json }
      const useCase = typeof json.use_case === 'string' ? json.use_case : undefined
      const chat = ctx.route === '/v1/ai/chat'
      ctx.useCase = useCase ?? (chat ? 'chat' : undefined)
      // upstream-ai streams chat unless the body says `"stream": false`.
      ctx.stream = chat && json.stream !== false
      return 'next'
    }
  }
}
