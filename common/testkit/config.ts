/**
 * What a service's loadConfig refuses in `env`: the problems of its
 * ConfigError (each names its variable), or [] when the env is accepted.
 */
import { ConfigError } from '../src/config.js'

export function configProblems (loadConfig: (env: Record<string, string>) => unknown, env: Record<string, string>): string[] {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems]
    throw error
  }
  return []
}
