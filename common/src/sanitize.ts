/**
 * sanitizeForLogging: the one function every log call that carries request
 * data goes through. Values under sensitive keys become "[REDACTED]", long
 * strings are cut, depth and breadth are bounded, cycles are safe. It never
 * throws and never mutates its input.
 */
export const REDACTED = '[REDACTED]'

/** Keys whose values never reach a log. Matched case-insensitively, `-` read as `_`, also as a suffix (`access_token`, `x_api_key`). */
export const SENSITIVE_KEYS: readonly string[] = Object.freeze([
  'birth_data', 'birth_date', 'birth_time', 'birth_place', 'content', 'prompt', 'authorization',
  'proxy_authorization', 'cookie', 'set_cookie', 'api_key', 'token', 'password', 'secret', 'email'
])

export interface SanitizeOptions {
  /** Keys to redact besides SENSITIVE_KEYS. @default [] */
  extraKeys?: readonly string[]
  /** Longer strings are cut to this many characters. @default 256 */
  maxStringLength?: number
  /** Deeper values are replaced by "[DEPTH]". @default 6 */
  maxDepth?: number
  /** Arrays and objects keep at most this many entries. @default 50 */
  maxEntries?: number
}

export type Sanitizer = (value: unknown) => unknown

function normalizeKey (key: string): string {
  return key.toLowerCase().replaceAll('-', '_')
}

/** The ancestors of a primitive: none, and visit never pushes for one. */
const NO_ANCESTORS: object[] = Object.freeze([]) as unknown as object[]

/** Distinct keys (of at most MAX_REMEMBERED_KEY_LENGTH characters) whose verdict a sanitizer remembers; others are judged afresh each time. */
const MAX_REMEMBERED_KEYS = 4096
const MAX_REMEMBERED_KEY_LENGTH = 64

/**
 * Builds a sanitizer once (the key set is compiled here, not per call).
 * It runs on every completion line, so its hot path is kept lean: a key's
 * verdict is remembered (log calls repeat the same few keys), ancestors are
 * tracked on a small array (at most maxDepth long) instead of a WeakSet, and
 * properties are plain assignments (only `__proto__` needs defineProperty to
 * stay an own property).
 */
export function createSanitizer (options: SanitizeOptions = {}): Sanitizer {
  const keys = new Set([...SENSITIVE_KEYS, ...(options.extraKeys ?? [])].map(normalizeKey))
  const suffixes = [...keys].map((key) => `_${key}`)
  const maxStringLength = options.maxStringLength ?? 256
  const maxDepth = options.maxDepth ?? 6
  const maxEntries = options.maxEntries ?? 50

  const verdicts = new Map<string, boolean>()
  const isSensitive = (key: string): boolean => {
    const known = verdicts.get(key)
    if (known !== undefined) return known
    const normalized = normalizeKey(key)
    const verdict = keys.has(normalized) || suffixes.some((suffix) => normalized.endsWith(suffix))
    if (verdicts.size < MAX_REMEMBERED_KEYS && key.length <= MAX_REMEMBERED_KEY_LENGTH) verdicts.set(key, verdict)
    return verdict
  }

  /** `ancestors`: the objects and arrays being visited, root first; a value among them is a cycle. */
  const visit = (value: unknown, depth: number, ancestors: object[]): unknown => {
    if (typeof value === 'string') {
      return value.length > maxStringLength ? `${value.slice(0, maxStringLength)}…[${value.length} chars]` : value
    }
    if (typeof value === 'bigint') return value.toString()
    if (typeof value === 'function' || typeof value === 'symbol') return `[${typeof value}]`
    if (value === null || typeof value !== 'object') return value
    if (ancestors.includes(value)) return '[CIRCULAR]'
    if (depth >= maxDepth) return '[DEPTH]'
    if (value instanceof Error) {
      return { name: value.name, message: visit(value.message, depth + 1, ancestors), code: (value as { code?: unknown }).code }
    }
    if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[binary ${value.byteLength} bytes]`
    ancestors.push(value)
    try {
      if (Array.isArray(value)) {
        const items = value.slice(0, maxEntries).map((item) => visit(item, depth + 1, ancestors))
        if (value.length > maxEntries) items.push(`…[${value.length - maxEntries} more]`)
        return items
      }
      const result: Record<string, unknown> = {}
      const names = Object.keys(value)
      const count = Math.min(names.length, maxEntries)
      for (let i = 0; i < count; i++) {
        const key = names[i]!
        const clean = isSensitive(key) ? REDACTED : visit((value as Record<string, unknown>)[key], depth + 1, ancestors)
        // defineProperty: a "__proto__" key stays a plain own property.
        if (key === '__proto__') Object.defineProperty(result, key, { value: clean, enumerable: true, writable: true, configurable: true })
        else result[key] = clean
      }
      if (names.length > maxEntries) result['…'] = `[${names.length - maxEntries} more keys]`
      return result
    } finally {
      ancestors.pop()
    }
  }

  return (value) => {
    try {
      // A primitive (the completion line's strings) never reaches the ancestors: no array per call for it.
      return visit(value, 0, typeof value === 'object' && value !== null ? [] : NO_ANCESTORS)
    } catch {
      return '[UNSERIALIZABLE]'
    }
  }
}

const defaultSanitizer = createSanitizer()

/** Sanitises with the default key set. Services with extra keys use `createSanitizer`. */
export function sanitizeForLogging (value: unknown): unknown {
  return defaultSanitizer(value)
}

/**
 * An error for a log line: its sanitised name, message and code, plus its
 * stack frames (code locations only: the stack's first line repeats the
 * message, which may quote request data, so it is not kept as is).
 */
export function describeError (error: unknown, sanitize: Sanitizer = sanitizeForLogging): unknown {
  if (!(error instanceof Error)) return sanitize(error)
  const frames = (error.stack ?? '').split('\n').filter((line) => line.startsWith('    at ')).slice(0, 10).map((line) => line.trim())
  return { ...(sanitize(error) as object), frames }
}
