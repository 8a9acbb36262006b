/**
 * The structural checks a JSON request body passes before anyone parses it,
 * in one pass over the text. JSON.parse accepts things that are dangerous
 * or ambiguous further on, so both services refuse them first:
 *
 * - nesting deeper than `maxDepth`: parsing half a million nested arrays
 *   (1 MiB of `[`) blocks the event loop for seconds, and every recursive
 *   walk of the result (the cache key's stable stringify, the prompt's
 *   JSON.stringify) overflows the stack long before that (~10 000 levels);
 * - a key repeated in one object (compared after unescaping, so `"a"` and
 *   `"\u0061"` are the same key): JSON.parse keeps the last value, another
 *   parser may keep the first, and the gateway forwards the bytes as they
 *   are, so the gateway's cache key and upstream-ai's answer could disagree
 *   about what was asked (a cache-poisoning differential);
 * - a `"__proto__"` key: harmless for JSON.parse, a prototype-pollution
 *   vector for any code that later merges the object by assignment.
 *
 * It is a scanner, not a parser: on text that is not valid JSON its verdict
 * is meaningless, but it never throws and never recurses, and JSON.parse
 * refuses such text right after it.
 */

/** Deepest nesting of objects and arrays accepted in a request body. */
export const MAX_JSON_DEPTH = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COMMA = 0x2c

/** What is wrong with the body's structure, or undefined when nothing is. */
export type JsonStructureProblem = 'depth' | 'duplicate-key' | 'proto-key'

/** One open container: for an object, the keys seen so far and whether a key comes next. */
interface Frame {
  keys: Set<string> | undefined
  expectKey: boolean
}

/** The index of the quote that closes the string opened at `start`, or -1. */
function stringEnd (text: string, start: number): number {
  let at = start + 1
  for (;;) {
    const quote = text.indexOf('"', at)
    if (quote === -1) return -1
    // Escaped when preceded by an odd number of backslashes.
    let backslashes = 0
    for (let i = quote - 1; i > start && text.charCodeAt(i) === BACKSLASH; i--) backslashes++
    if (backslashes % 2 === 0) return quote
    at = quote + 1
  }
}

/** The first structural problem of a JSON text, if any. */
export function jsonStructureProblem (text: string, maxDepth = MAX_JSON_DEPTH): JsonStructureProblem | undefined {
  const stack: Frame[] = []
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code === QUOTE) {
      const end = stringEnd(text, i)
      if (end === -1) return undefined
      const top = stack.at(-1)
      if (top?.keys !== undefined && top.expectKey) {
        top.expectKey = false
        const raw = text.slice(i + 1, end)
        let key = raw
        if (raw.includes('\\')) {
          try {
            key = JSON.parse(text.slice(i, end + 1)) as string
          } catch {
            return undefined
          }
        }
        if (key === '__proto__') return 'proto-key'
        if (top.keys.has(key)) return 'duplicate-key'
        top.keys.add(key)
      }
      i = end
    } else if (code === OPEN_OBJECT || code === OPEN_ARRAY) {
      if (stack.length >= maxDepth) return 'depth'
      stack.push({ keys: code === OPEN_OBJECT ? new Set() : undefined, expectKey: code === OPEN_OBJECT })
    } else if (code === CLOSE_OBJECT || code === CLOSE_ARRAY) {
      stack.pop()
    } else if (code === COMMA) {
      const top = stack.at(-1)
      if (top?.keys !== undefined) top.expectKey = true
    }
  }
  return undefined
}
