/**
 * Tokens used, read from the upstream answer as it passes through the proxy,
 * for the completion log (`tokens_used`) and the tokens metric.
 *
 * - An event stream: only the `done` event is parsed (`event: done`,
 *   `data: {"usage": {"total_tokens": N, …}, "meta": …}`), from the whole
 *   events the proxy passes on anyway (EventSplitter); nothing is buffered
 *   beyond what the proxy already holds, and other events cost one byte
 *   search.
 * - A JSON answer (2xx): its bytes are kept up to MAX_JSON_USAGE_BYTES, as
 *   references to the chunks already read, and parsed once at its end.
 * Anything else (an error answer, another content type) reports nothing.
 *
 * With token budgets on (`promptTokens` given), a stream also reports a
 * running estimate as its `delta` events pass: promptTokens + ceil(delta
 * text characters / 4), until the `done` event brings the real count. A
 * stream cut short (client gone, upstream died, idle timeout) has thus
 * reported what it used by the time its response closes, and the
 * reservation is settled to that (ratelimit/token-estimate.ts).
 */
import { BYTES_PER_TOKEN } from '../ratelimit/token-estimate.js'

/** Largest JSON answer kept to read its usage; a larger one logs `tokens_used: null`. */
export const MAX_JSON_USAGE_BYTES = 1_048_576

const JSON_CONTENT_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i
const DONE = Buffer.from('done')
const DELTA = Buffer.from('delta')

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** `usage.total_tokens` of a parsed answer or `done` event, when it is a non-negative finite number. */
export function totalTokensOf (value: unknown): number | undefined {
  const usage = isObject(value) ? value.usage : undefined
  const total = isObject(usage) ? usage.total_tokens : undefined
  return typeof total === 'number' && Number.isFinite(total) && total >= 0 ? total : undefined
}

/**
 * The `usage.total_tokens` of the last `done` event among whole SSE events
 * (each ended by a blank line), or undefined. Follows the SSE field rules:
 * `event:` names the event, `data:` lines are joined with `\n`, one leading
 * space after the colon is dropped, comments and other fields are ignored.
 */
export function doneEventTokens (events: Buffer): number | undefined {
  // The common case (a delta event) costs this one search.
  if (events.indexOf(DONE) === -1) return undefined
  let tokens: number | undefined
  for (const data of eventData(events, 'done')) {
    tokens = totalTokensOf(data) ?? tokens
  }
  return tokens
}

/** Characters of `text` in the `delta` events among whole SSE events (`data: {"text": "…"}`). */
export function deltaTextLength (events: Buffer): number {
  if (events.indexOf(DELTA) === -1) return 0
  let length = 0
  for (const data of eventData(events, 'delta')) {
    const text = isObject(data) ? data.text : undefined
    if (typeof text === 'string') length += text.length
  }
  return length
}

/** The parsed `data` of each event named `name`, following the SSE field rules; malformed data is skipped. */
function eventData (events: Buffer, name: string): unknown[] {
  const found: unknown[] = []
  for (const block of events.toString('utf8').split(/\r\n\r\n|\n\n|\r\r/)) {
    let event = 'message'
    const data: string[] = []
    for (const line of block.split(/\r\n|\n|\r/)) {
      const colon = line.indexOf(':')
      if (colon <= 0) continue
      const field = line.slice(0, colon)
      const value = line.slice(colon + 1).replace(/^ /, '')
      if (field === 'event') event = value
      else if (field === 'data') data.push(value)
    }
    if (event !== name || data.length === 0) continue
    try {
      found.push(JSON.parse(data.join('\n')))
    } catch {
      // A malformed event: nothing to read.
    }
  }
  return found
}

export interface UsageTap {
  /** The bytes just passed on to the client (whole events for a stream). */
  push: (bytes: Buffer) => void
  /** The answer ended normally. */
  end: () => void
}

const NOTHING: UsageTap = Object.freeze({ push: () => {}, end: () => {} })

/**
 * A tap on one upstream answer that calls `onTokens` with its
 * `usage.total_tokens`: as soon as a stream's `done` event passes, or at the
 * end of a JSON answer. With `promptTokens` (token budgets on), a stream
 * also reports the running estimate after each `delta` event until then.
 */
export function createUsageTap (
  answer: { status: number; contentType: string | undefined; stream: boolean; promptTokens?: number | undefined },
  onTokens: (tokens: number) => void
): UsageTap {
  if (answer.status < 200 || answer.status >= 300) return NOTHING
  if (answer.stream) {
    const promptTokens = answer.promptTokens
    let deltaChars = 0
    let done = false
    return {
      push: (bytes) => {
        const tokens = doneEventTokens(bytes)
        if (tokens !== undefined) {
          done = true
          onTokens(tokens)
          return
        }
        if (promptTokens === undefined || done) return
        const length = deltaTextLength(bytes)
        if (length === 0) return
        deltaChars += length
        onTokens(promptTokens + Math.ceil(deltaChars / BYTES_PER_TOKEN))
      },
      end: () => {}
    }
  }
  if (answer.contentType === undefined || !JSON_CONTENT_TYPE.test(answer.contentType)) return NOTHING
  let chunks: Buffer[] | undefined = []
  let size = 0
  return {
    push: (bytes) => {
      if (chunks === undefined) return
      size += bytes.length
      if (size > MAX_JSON_USAGE_BYTES) chunks = undefined
      else chunks.push(bytes)
    },
    end: () => {
      if (chunks === undefined) return
      try {
        // Most answers are one chunk: read it in place rather than copy it.
        const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)
        const tokens = totalTokensOf(JSON.parse(bytes.toString('utf8')))
        if (tokens !== undefined) onTokens(tokens)
      } catch {
        // Not JSON after all: no usage to read.
      }
      chunks = undefined
    }
  }
}
