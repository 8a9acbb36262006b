/**
 * createLogger: pino writing one JSON object per line, shaped for log
 * collectors: ISO-8601 `time`, `level` as a label, `msg`, `service`, `env`
 * (and no `pid`/`hostname`: the collector knows where a line came from).
 * The destination is injected so tests read lines from a sink. pino's own
 * `redact` paths are a second belt behind sanitizeForLogging: compiled once
 * here, they catch a sensitive key that a log call forgot to sanitise at the
 * top level and under the usual containers (`headers`, `input`, `context`,
 * `err`, …). They are explicit paths on purpose: a path starting with a
 * wildcard (`*.token`) makes fast-redact walk and restore every line, some
 * 40 times slower per line; any depth is the sanitizer's job.
 */
import { pino, type DestinationStream, type Logger } from 'pino'
import { REDACTED, SENSITIVE_KEYS } from './sanitize.js'

export type { Logger } from 'pino'

export interface LoggerOptions {
  /** `ai-gateway` or `upstream-ai`. */
  service: string
  /** The ENVIRONMENT value. */
  environment: string
  /** @default 'info' */
  level?: string
  /** Keys redacted besides SENSITIVE_KEYS (AI_ENGINE_LOG_REDACT_KEYS). @default [] */
  redactKeys?: readonly string[]
}

/** A key as a pino (fast-redact) path segment: bare when it is an identifier, bracketed otherwise. */
function segment (key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `.${key}` : `["${key}"]`
}

/** Objects that commonly carry request data or credentials in a log call. */
const CONTAINERS = [
  'headers', 'req.headers', 'res.headers', 'request', 'input', 'context', 'options', 'user', 'data', 'payload',
  'params', 'query', 'err', 'error', 'details'
]

/** The redact paths for `keys`: at the top level and directly under each container; message contents; any `body`. */
export function redactPaths (keys: readonly string[]): string[] {
  const paths = new Set<string>([
    'body', 'req.body', 'res.body', 'request.body',
    'messages[*].content', 'input.messages[*].content', 'request.messages[*].content',
    'headers["proxy-authorization"]', 'headers["x-api-key"]', 'headers["set-cookie"]'
  ])
  for (const key of keys) {
    const tail = segment(key)
    paths.add(tail.startsWith('.') ? tail.slice(1) : tail)
    for (const container of CONTAINERS) paths.add(`${container}${tail}`)
  }
  return [...paths]
}

/**
 * pino's `isoTime`, kept for the millisecond it names: under load many lines
 * share one, and formatting the date was a good part of each line's cost.
 */
export function isoTimeByMillisecond (): () => string {
  let lastMs = Number.NaN
  let last = ''
  return () => {
    const ms = Date.now()
    if (ms !== lastMs) {
      lastMs = ms
      last = `,"time":"${new Date(ms).toISOString()}"`
    }
    return last
  }
}

export function createLogger (options: LoggerOptions, destination?: DestinationStream): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { service: options.service, env: options.environment },
    timestamp: isoTimeByMillisecond(),
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: redactPaths([...SENSITIVE_KEYS, ...(options.redactKeys ?? [])]), censor: REDACTED },
    messageKey: 'msg'
  }, destination ?? pino.destination({ dest: 1, sync: false }))
}
