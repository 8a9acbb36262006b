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

/** Builds a sanitizer once (the key set is compiled here, not per call). */
export function createSanitizer (options: SanitizeOptions = {}): Sanitizer {
  const keys = new Set([...SENSITIVE_KEYS, ...(options.extraKeys ?? [])].map(normalizeKey))
  const suffixes = [...keys].map((key) => `_${key}`)
  const maxStringLength = options.maxStringLength ?? 256
  const maxDepth = options.maxDepth ?? 6
  const maxEntries = options.maxEntries ?? 50

  const isSensitive = (key: string): boolean => {
    const normalized = normalizeKey(key)
    return keys.has(normalized) || suffixes.some((suffix) => normalized.endsWith(suffix))
  }

  const visit = (value: unknown, depth: number, seen: WeakSet<object>): unknown => {
    if (typeof value === 'string') {
      return value.length > maxStringLength ? `${value.slice(0, maxStringLength)}…[${value.length} chars]` : value
    }
    if (typeof value === 'bigint') return value.toString()
    if (typeof value === 'function' || typeof value === 'symbol') return `[${typeof value}]`
    if (value === null || typeof value !== 'object') return value
    if (seen.has(value)) return '[CIRCULAR]'
    if (depth >= maxDepth) return '[DEPTH]'
    if (value instanceof Error) {
      return { name: value.name, message: visit(value.message, depth + 1, seen), code: (value as { code?: unknown }).code }
    }
    if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[binary ${value.byteLength} bytes]`
    seen.add(value)
    try {
      if (Array.isArray(value)) {
        const items = value.slice(0, maxEntries).map((item) => visit(item, depth + 1, seen))
        if (value.length > maxEntries) items.push(`…[${value.length - maxEntries} more]`)
        return items
      }
      const result: Record<string, unknown> = {}
      let count = 0
      for (const key of Object.keys(value)) {
        if (count++ >= maxEntries) {
          result['…'] = `[${Object.keys(value).length - maxEntries} more keys]`
          break
        }
        const entry = (value as Record<string, unknown>)[key]
        // defineProperty: a "__proto__" key stays a plain own property.
        Object.defineProperty(result, key, {
          value: isSensitive(key) ? REDACTED : visit(entry, depth + 1, seen),
          enumerable: true,
          writable: true,
          configurable: true
        })
      }
      return result
    } finally {
      seen.delete(value)
    }
  }

  return (value) => {
    try {
      return visit(value, 0, new WeakSet())
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
