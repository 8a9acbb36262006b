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

/** What the batching destination needs of pino's SonicBoom. */
interface LineSink {
  write: (data: string) => unknown
  flush: (cb?: (error?: Error) => void) => void
  flushSync: () => void
}

/**
 * Lines logged in one turn of the event loop, handed to `sink` together at
 * the end of that turn (setImmediate): one write, one trip through the
 * thread pool, for all the completion lines of a busy turn instead of one
 * each. Nothing waits longer than the turn it was logged in. `flush` and
 * `flushSync` (pino's `logger.flush()`, `fatal`, and the exit hook below)
 * hand over what is pending first.
 */
export class TurnBatchedDestination implements DestinationStream {
  readonly #sink: LineSink
  readonly #pending: string[] = []
  #scheduled = false

  constructor (sink: LineSink) {
    this.#sink = sink
  }

  write (line: string): void {
    this.#pending.push(line)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#endOfTurn)
    }
  }

  flush (cb?: (error?: Error) => void): void {
    this.#handOver()
    this.#sink.flush(cb)
  }

  flushSync (): void {
    this.#handOver()
    this.#sink.flushSync()
  }

  readonly #endOfTurn = (): void => {
    this.#scheduled = false
    this.#handOver()
  }

  #handOver (): void {
    const pending = this.#pending
    if (pending.length === 0) return
    // One flat string: SonicBoom measures its pending text on every write, so it gets one write per turn.
    const text = pending.length === 1 ? pending[0]! : pending.join('')
    pending.length = 0
    this.#sink.write(text)
  }
}

/** stdout through pino's async SonicBoom, a turn's lines at a time; what is pending is written synchronously at exit. */
function stdoutDestination (): DestinationStream {
  const destination = new TurnBatchedDestination(pino.destination({ dest: 1, sync: false }))
  // pino's own exit hook flushes SonicBoom only: the lines of the last turn are handed over and written here.
  process.once('exit', () => {
    try {
      destination.flushSync()
    } catch {
      // stdout is gone (EPIPE): nothing more can be written.
    }
  })
  return destination
}

export function createLogger (options: LoggerOptions, destination?: DestinationStream): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { service: options.service, env: options.environment },
    timestamp: isoTimeByMillisecond(),
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: redactPaths([...SENSITIVE_KEYS, ...(options.redactKeys ?? [])]), censor: REDACTED },
    messageKey: 'msg'
  }, destination ?? stdoutDestination())
}
