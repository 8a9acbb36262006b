/**
 * The compose files as docker-compose itself reads them: Debian's
 * docker-compose (v1.29, the Python tool; no Docker engine needed for
 * `config`) validates and interpolates a file, and prints the result as
 * YAML, which Debian's python3-yaml (a dependency of docker-compose) turns
 * into JSON for the test. No YAML parser is added to the project.
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from '../../../common/testkit/process.js'

const run = promisify(execFile)

export const PROD_COMPOSE = join(ROOT, 'compose/docker-compose.prod.yml')
export const DEV_COMPOSE = join(ROOT, 'compose/docker-compose.yml')
export const ENV_EXAMPLE = join(ROOT, '.env.example')

/** What docker-compose sees besides the env file: no variable of the test's own environment leaks in. */
const COMPOSE_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' }

export interface ComposeConfig {
  services: Record<string, ComposeService>
  networks?: Record<string, { internal?: boolean; ipam?: { config?: Array<{ subnet?: string }> } } | null>
  volumes?: Record<string, unknown>
}

export interface ComposeService {
  image?: string
  build?: { context: string; dockerfile?: string; target?: string }
  profiles?: string[]
  ports?: Array<string | { target: number; published?: number | string; host_ip?: string; protocol?: string }>
  networks?: Record<string, { ipv4_address?: string } | null> | string[]
  depends_on?: Record<string, { condition?: string }> | string[]
  healthcheck?: { test?: string[] | string; disable?: boolean }
  restart?: string
  logging?: { driver?: string; options?: Record<string, string> }
  environment?: Record<string, string | null>
  volumes?: Array<string | { type: string; source?: string; target: string; read_only?: boolean }>
  stop_grace_period?: string
  read_only?: boolean
  cap_drop?: string[]
  security_opt?: string[]
}

/** `docker-compose [--env-file f] -f file config`: exit status and output. */
export async function composeConfig (file: string, envFile: string): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('docker-compose', ['--env-file', envFile, '-f', file, 'config'], { cwd: ROOT, env: COMPOSE_ENV })
    return { ok: true, stdout, stderr }
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string }
    return { ok: false, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' }
  }
}

/** The YAML docker-compose printed, as JSON (through /usr/bin/python3 and its yaml module). */
export async function yamlToJson (yaml: string): Promise<unknown> {
  const child = execFile('/usr/bin/python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'])
  const output = new Promise<string>((resolve, reject) => {
    let stdout = ''
    child.stdout!.on('data', (chunk: string) => { stdout += chunk })
    child.once('error', reject)
    child.once('exit', (code) => code === 0 ? resolve(stdout) : reject(new Error(`python3 yaml → json exited ${code}`)))
  })
  child.stdin!.end(yaml)
  return JSON.parse(await output)
}

export async function loadCompose (file: string, envFile: string): Promise<ComposeConfig> {
  const result = await composeConfig(file, envFile)
  if (!result.ok) throw new Error(`docker-compose config failed:\n${result.stderr}`)
  return await yamlToJson(result.stdout) as ComposeConfig
}

/** Names of the networks a service joins, whatever the syntax. */
export function networksOf (service: ComposeService): string[] {
  if (service.networks === undefined) return ['default']
  return Array.isArray(service.networks) ? service.networks : Object.keys(service.networks)
}

/** `${NAME}`, `${NAME:-x}`, `${NAME:?x}` … in a compose file's text (`$$` escapes excluded). */
export function interpolatedVariables (text: string): Set<string> {
  const names = new Set<string>()
  for (const match of text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) names.add(match[1]!)
  return names
}

export interface EnvExampleEntry {
  name: string
  value: string
  /** Set in the file (`NAME=value`), rather than listed in a comment (`# NAME=value`). */
  active: boolean
  /** The comment lines right above it. */
  comment: string[]
}

/** Every `NAME=value` and `# NAME=value` line of .env.example with the comment above it. */
export function parseEnvExample (text: string): EnvExampleEntry[] {
  const entries: EnvExampleEntry[] = []
  let comment: string[] = []
  for (const line of text.split('\n')) {
    const active = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line)
    const listed = /^# ([A-Z][A-Z0-9_]*)=(\S*)/.exec(line)
    if (active !== null) {
      entries.push({ name: active[1]!, value: active[2]!, active: true, comment })
      comment = []
    } else if (listed !== null) {
      entries.push({ name: listed[1]!, value: listed[2]!, active: false, comment })
    } else if (line.startsWith('#')) {
      comment.push(line)
    } else {
      comment = []
    }
  }
  return entries
}
