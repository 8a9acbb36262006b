/**
 * The HTTP plumbing both services share: reading a bounded JSON body and
 * answering with JSON or with the error envelope.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ApiError, errorEnvelope, type EnvelopeMeta } from './errors.js'

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

/**
 * Reads the whole body, refusing it with PAYLOAD_TOO_LARGE as soon as it
 * crosses `maxBytes` (from Content-Length before reading, or while
 * streaming) without buffering the rest.
 */
export async function readBody (req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > maxBytes) {
    throw tooLarge(maxBytes)
  }
  const chunks: Buffer[] = []
  let received = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    received += chunk.length
    if (received > maxBytes) throw tooLarge(maxBytes)
    chunks.push(chunk)
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received)
}

function tooLarge (maxBytes: number): ApiError {
  return new ApiError('PAYLOAD_TOO_LARGE', `The request body is larger than ${maxBytes} bytes.`)
}

/** Parses a JSON object body; anything else is INVALID_REQUEST. */
export function parseJsonObject (body: Buffer): Record<string, unknown> {
  if (body.length === 0) throw new ApiError('INVALID_REQUEST', 'The request body is empty; a JSON object is expected.')
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    throw new ApiError('INVALID_REQUEST', 'The request body is not valid JSON.')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError('INVALID_REQUEST', 'The request body must be a JSON object.')
  }
  return value as Record<string, unknown>
}
