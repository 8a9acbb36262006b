/**
 * Configuration from environment variables, described as one table per
 * service: env name, default, parser and a one-line description. Every
 * problem is collected and reported at once, naming the variable; the result
 * is frozen. An empty value counts as unset.
 */
export interface Setting<T> {
  /** The environment variable's name. */
  env: string
  /** Used when the variable is unset or empty. `undefined` means "optional, no value". */
  default: T | undefined
  /** Turns the raw string into a value, or throws an Error whose message says what is expected. */
  parse: (raw: string) => T
  /** One line for docs/configuration.md. */
  description: string
  /** The value may hold a credential (a URL with a password): a problem with it never quotes it. @default false */
  sensitive?: boolean
}

export type SettingsTable = Record<string, Setting<unknown>>

export type SettingsOf<S extends SettingsTable> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T>
    ? (S[K]['default'] extends undefined ? T | undefined : T)
    : never
}

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor (problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export function loadSettings<S extends SettingsTable> (
  table: S,
  env: Record<string, string | undefined> = process.env
): SettingsOf<S> {
  const problems: string[] = []
  const values: Record<string, unknown> = {}
  for (const [key, setting] of Object.entries(table)) {
    const raw = env[setting.env]
    if (raw === undefined || raw.trim() === '') {
      values[key] = setting.default
      continue
    }
    try {
      values[key] = setting.parse(raw.trim())
    } catch (error) {
      const shown = setting.sensitive === true ? '' : `=${JSON.stringify(raw)}`
      problems.push(`${setting.env}${shown}: ${(error as Error).message}`)
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return Object.freeze(values) as SettingsOf<S>
}

// Parsers. Each returns a function that throws with a message saying what is expected.

export function integer (range: { min?: number; max?: number } = {}): (raw: string) => number {
  return (raw) => {
    if (!/^-?\d+$/.test(raw)) throw new Error('expected an integer')
    return inRange(Number(raw), range)
  }
}

export function number (range: { min?: number; max?: number } = {}): (raw: string) => number {
  return (raw) => {
    const value = Number(raw)
    if (!/^-?(\d+\.?\d*|\.\d+)$/.test(raw) || !Number.isFinite(value)) throw new Error('expected a number')
    return inRange(value, range)
  }
}

function inRange (value: number, { min, max }: { min?: number; max?: number }): number {
  if (min !== undefined && value < min) throw new Error(`expected at least ${min}`)
  if (max !== undefined && value > max) throw new Error(`expected at most ${max}`)
  return value
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on'])
const FALSE_WORDS = new Set(['false', '0', 'no', 'off'])

export function boolean (): (raw: string) => boolean {
  return (raw) => {
    const word = raw.toLowerCase()
    if (TRUE_WORDS.has(word)) return true
    if (FALSE_WORDS.has(word)) return false
    throw new Error('expected true or false')
  }
}

export function string (options: { pattern?: RegExp; minLength?: number; what?: string } = {}): (raw: string) => string {
  return (raw) => {
    if (options.minLength !== undefined && raw.length < options.minLength) {
      throw new Error(`expected at least ${options.minLength} characters`)
    }
    if (options.pattern !== undefined && !options.pattern.test(raw)) {
      throw new Error(`expected ${options.what ?? `a value matching ${String(options.pattern)}`}`)
    }
    return raw
  }
}

export function oneOf<const T extends string> (choices: readonly T[]): (raw: string) => T {
  return (raw) => {
    const value = raw.toLowerCase()
    if (!(choices as readonly string[]).includes(value)) throw new Error(`expected one of ${choices.join(', ')}`)
    return value as T
  }
}

export function url (protocols: readonly string[] = ['http:', 'https:']): (raw: string) => URL {
  return (raw) => {
    let parsed: URL
    try {
      parsed = new URL(raw)
    } catch {
      throw new Error('expected an absolute URL')
    }
    if (!protocols.includes(parsed.protocol)) throw new Error(`expected a URL starting with ${protocols.join(' or ')}`)
    return parsed
  }
}

/** A comma-separated list; each item trimmed and checked by `item`. */
export function list<T> (item: (raw: string) => T): (raw: string) => readonly T[] {
  return (raw) => Object.freeze(
    raw.split(',').map((part) => part.trim()).filter((part) => part !== '').map((part) => {
      try {
        return item(part)
      } catch (error) {
        throw new Error(`item ${JSON.stringify(part)}: ${(error as Error).message}`)
      }
    })
  )
}

/** The settings every service shares. */
export const COMMON_SETTINGS = {
  environment: {
    env: 'ENVIRONMENT',
    default: 'development',
    parse: oneOf(['development', 'test', 'staging', 'production']),
    description: 'Deployment environment; `production` turns on the strict start-up checks.'
  },
  debug: {
    env: 'DEBUG',
    default: false,
    parse: boolean(),
    description: 'Shorthand for LOG_LEVEL=debug when LOG_LEVEL is unset.'
  },
  logLevel: {
    env: 'LOG_LEVEL',
    default: undefined,
    parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    description: 'Log level (`info` by default, `debug` when DEBUG=true).'
  },
  logRedactKeys: {
    env: 'AI_ENGINE_LOG_REDACT_KEYS',
    default: Object.freeze([]) as readonly string[],
    parse: list(string({ pattern: /^[A-Za-z0-9_.-]+$/, what: 'a key name' })),
    description: 'Extra comma-separated keys whose values are replaced by "[REDACTED]" in logs.'
  }
} satisfies SettingsTable

/** HOST and PORT: where a service listens (each service has its own default port). */
export function listenSettings (defaultPort: number) {
  return {
    /** Interface to listen on. @default '0.0.0.0' */
    host: {
      env: 'HOST',
      default: '0.0.0.0',
      parse: string({ minLength: 1 }),
      description: 'Interface to listen on.'
    },
    /** Port to listen on; 0 picks a free port (the real one is in the `listening` log line). */
    port: {
      env: 'PORT',
      default: defaultPort,
      parse: integer({ min: 0, max: 65535 }),
      description: 'Port to listen on; `0` picks a free port, logged in the `listening` line.'
    }
  } satisfies SettingsTable
}
