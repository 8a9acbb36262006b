/**
 * Server-sent events, as far as a proxy needs them: forward whole events as
 * they arrive (no response buffering), and end a broken stream with an
 * `event: error` whose data is the error envelope.
 */
import { errorEnvelope, type ApiError, type EnvelopeMeta } from '../../../common/src/errors.js'

export const EVENT_STREAM = /^text\/event-stream\b/i

/** A partial event longer than this is passed on anyway rather than held. */
const MAX_HELD_BYTES = 1_048_576

/** Offset just past the last blank line (the end of an event) in `data`, or -1. */
export function lastEventEnd (data: Buffer): number {
  const lf = data.lastIndexOf('\n\n')
  const crlf = data.lastIndexOf('\r\n\r\n')
  const cr = data.lastIndexOf('\r\r')
  return Math.max(lf === -1 ? -1 : lf + 2, crlf === -1 ? -1 : crlf + 4, cr === -1 ? -1 : cr + 2)
}

/**
 * Splits the upstream bytes at event boundaries: whole events go on at once,
 * a trailing partial event waits for its end. If upstream dies mid-event the
 * client therefore never holds half an event that our `event: error` would
 * be glued onto. Upstream writes one event per chunk, so the common case is
 * one backward search per chunk and no copy.
 */
export class EventSplitter {
  #held: Buffer | undefined
  /** A partial event was passed on (it outgrew MAX_HELD_BYTES): the client is mid-event. */
  #midEvent = false

  /** The client has part of an event (one that outgrew MAX_HELD_BYTES): nothing else may be written until it ends. */
  get midEvent (): boolean {
    return this.#midEvent
  }

  /** The bytes that can go to the client now, if any. */
  push (chunk: Buffer): Buffer | undefined {
    const data = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk])
    const end = lastEventEnd(data)
    if (end === data.length) {
      this.#held = undefined
      this.#midEvent = false
      return data
    }
    if (end === -1 && data.length <= MAX_HELD_BYTES) {
      this.#held = data
      return undefined
    }
    if (end === -1) {
      this.#held = undefined
      this.#midEvent = true
      return data
    }
    // Copy the tail so the held bytes do not pin the whole chunk.
    this.#held = Buffer.from(data.subarray(end))
    this.#midEvent = false
    return data.subarray(0, end)
  }

  /** Whatever is held, at a normal end of stream (the client's parser drops an unterminated event). */
  flush (): Buffer | undefined {
    const held = this.#held
    this.#held = undefined
    return held
  }

  /** An error event that follows cleanly whatever was already sent; the held partial event is dropped. */
  errorEvent (error: ApiError, meta: EnvelopeMeta): string {
    this.#held = undefined
    return `${this.#midEvent ? '\n\n' : ''}${formatErrorEvent(error, meta)}`
  }
}

export function formatErrorEvent (error: ApiError, meta: EnvelopeMeta): string {
  return `event: error\ndata: ${JSON.stringify(errorEnvelope(error, meta))}\n\n`
}
