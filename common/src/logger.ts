/**
 * createLogger: pino writing one JSON object per line, shaped for log
 * collectors: ISO-8601 `time`, `level` as a label, `msg`, `service`, `env`.
 * The destination is injected so tests read lines from a sink. pino's own
 * `redact` paths are a second belt behind sanitizeForLogging.
 */
import { pino, type DestinationStream, type Logger } from 'pino'
import { REDACTED } from './sanitize.js'

export type { Logger } from 'pino'

export interface LoggerOptions {
  /** `ai-gateway` or `upstream-ai`. */
  service: string
  /** The ENVIRONMENT value. */
  environment: string
  /** @default 'info' */
  level?: string
}

const REDACT_PATHS = [
  'authorization', 'cookie', 'token', 'api_key', 'password', 'secret',
  'headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]', 'headers["x-api-key"]',
  'req.headers.authorization', 'req.headers.cookie',
  '*.authorization', '*.cookie', '*.token', '*.api_key', '*.password', '*.secret',
  '*.birth_data', '*.prompt', '*.content', 'body', '*.body'
]

export function createLogger (options: LoggerOptions, destination?: DestinationStream): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { service: options.service, env: options.environment },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    messageKey: 'msg'
  }, destination ?? pino.destination({ dest: 1, sync: false }))
}
