/**
 * Body: reads the request body within its byte limit and checks only what
 * the gateway itself needs (a JSON object; `use_case` a string and
 * `options.temperature` a number when present; later the cache keys on
 * them). upstream-ai validates the rest. The bytes read are kept as they
 * are: they are what upstream-ai receives, never re-serialised.
 */
import type { IncomingMessage } from 'node:http'
import { ApiError } from '../../../common/src/errors.js'
import { isJsonContentType, parseJsonObject } from '../../../common/src/http.js'
import type { NamedStage } from './stage.js'

export interface BodyOptions {
  /** Largest accepted body, in bytes. @default 1048576 */
  maxBodyBytes: number
}

/** The client went away while sending its body: there is nobody to answer. */
export class ClientGoneError extends Error {
  constructor () {
    super('the client closed the connection while sending its body')
    this.name = 'ClientGoneError'
  }
}

function tooLarge (maxBytes: number): ApiError {
  return new ApiError('PAYLOAD_TOO_LARGE', `The request body is larger than ${maxBytes} bytes.`)
}

/**
 * Reads the body, refusing it as soon as it crosses `maxBytes`: at once from
 * Content-Length, or while it streams in. Unlike common's readBody (a
 * for-await loop) it never destroys the request on refusal: destroying an
 * unfinished IncomingMessage destroys its socket, and the client would see a
 * reset instead of the 413. The rest of the body is left to flow away
 * unbuffered until the 413 (with `Connection: close`) is out and Node closes
 * the socket.
 */
export async function readBoundedBody (req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes)
  // Gone already (while identity ran): its 'close' has fired and would never reach the listeners below.
  if (req.destroyed) throw new ClientGoneError()
  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let received = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onGone)
      req.off('close', onGone)
    }
    const onData = (chunk: Buffer): void => {
      received += chunk.length
      if (received > maxBytes) {
        cleanup()
        chunks.length = 0
        reject(tooLarge(maxBytes))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received))
    }
    const onGone = (): void => {
      cleanup()
      reject(new ClientGoneError())
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onGone)
    req.on('close', onGone)
  })
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
      const raw = await readBoundedBody(req, options.maxBodyBytes)
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
