/**
 * The HTTP plumbing both services share: reading a bounded JSON body and
 * answering with JSON or with the error envelope.
 */
import { isUtf8 } from 'node:buffer'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ApiError, errorEnvelope, type EnvelopeMeta } from './errors.js'
import { jsonStructureProblem, MAX_JSON_DEPTH, type JsonStructureProblem } from './json-guard.js'

export function sendJson (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number> = {}
): void {
  const payload = JSON.stringify(body)
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload)
  })
  res.end(payload)
}

/**
 * Answers with the error envelope. Once headers are out no JSON can follow:
 * the caller ends a stream itself, and anything else is cut so the client
 * never hangs on a half-written answer.
 */
export function sendError (res: ServerResponse, error: ApiError, meta: EnvelopeMeta): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const headers: Record<string, string> = { ...error.headers }
  // A request whose body we stopped reading leaves bytes on the socket: close it.
  if (error.type === 'PAYLOAD_TOO_LARGE') headers.connection = 'close'
  sendJson(res, error.status, errorEnvelope(error, meta), headers)
}

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

/** True when the request declares a JSON body (`application/json`, `application/*+json`, any charset). */
export function isJsonContentType (contentType: string | undefined): boolean {
  return contentType !== undefined && JSON_CONTENT_TYPE.test(contentType)
}

/** The client went away while sending its body: there is nobody to answer. */
export class ClientGoneError extends Error {
  constructor () {
    super('the client closed the connection while sending its body')
    this.name = 'ClientGoneError'
  }
}

/**
 * Reads the whole body, refusing it with PAYLOAD_TOO_LARGE as soon as it
 * crosses `maxBytes`: at once from Content-Length, or while it streams in.
 * It never destroys the request on refusal: destroying an unfinished
 * IncomingMessage destroys its socket, and the client would see a reset
 * instead of the 413. The rest of the body flows away unbuffered until the
 * 413 (with `Connection: close`, see sendError) is out and Node closes the
 * socket. A client that leaves mid-body rejects with ClientGoneError.
 */
export async function readBody (req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(maxBytes)
  // Gone already: its 'close' has fired and would never reach the listeners below.
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

function tooLarge (maxBytes: number): ApiError {
  return new ApiError('PAYLOAD_TOO_LARGE', `The request body is larger than ${maxBytes} bytes.`)
}

const STRUCTURE_MESSAGES: Record<JsonStructureProblem, string> = {
  depth: `The request body is nested more than ${MAX_JSON_DEPTH} levels deep.`,
  'duplicate-key': 'The request body repeats a key within one object.',
  'proto-key': 'The request body uses the reserved key "__proto__".'
}

/**
 * Parses a JSON object body; anything else is INVALID_REQUEST. Bytes that
 * are not UTF-8 are refused rather than decoded with replacement characters
 * (two different bodies would read as one, e.g. in a cache key), a byte
 * order mark is refused (RFC 8259 §8.1), and the structure is checked before
 * JSON.parse runs (json-guard.ts: depth, repeated keys, `__proto__`).
 */
export function parseJsonObject (body: Buffer): Record<string, unknown> {
  if (body.length === 0) throw new ApiError('INVALID_REQUEST', 'The request body is empty; a JSON object is expected.')
  if (!isUtf8(body)) throw new ApiError('INVALID_REQUEST', 'The request body is not valid UTF-8.')
  if (body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) throw new ApiError('INVALID_REQUEST', 'The request body starts with a byte order mark; send JSON without one.')
  const text = body.toString('utf8')
  const problem = jsonStructureProblem(text)
  if (problem !== undefined) throw new ApiError('INVALID_REQUEST', STRUCTURE_MESSAGES[problem])
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new ApiError('INVALID_REQUEST', 'The request body is not valid JSON.')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError('INVALID_REQUEST', 'The request body must be a JSON object.')
  }
  return value as Record<string, unknown>
}
