/**
 * The Dockerfile, run on this machine without a Docker engine: a small
 * interpreter for the instructions our Dockerfile uses, so the test runs
 * the very steps an image build runs, in their order.
 *
 * Each stage gets a folder standing for its filesystem root. FROM <image>
 * starts an empty one (the base image's own files are not there: its Node.js
 * and npm are this machine's); FROM <stage> copies an earlier stage. COPY
 * takes files from the build context through .dockerignore, or from an
 * earlier stage's folder (--from). RUN runs with /bin/sh in the stage's
 * WORKDIR with the stage's ENV on top of PATH and HOME alone (HOME holds
 * npm's cache, which makes `npm ci` fast here; an image build downloads
 * instead). USER, CMD, HEALTHCHECK, EXPOSE and STOPSIGNAL are recorded for
 * the test to start the image's command as the image would. An instruction
 * it does not know fails the parse.
 */
import { spawn } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, posix, relative } from 'node:path'

export interface Instruction { keyword: string; args: string; line: number }

export interface Stage {
  name: string
  /** The FROM argument after ARG substitution: an image, or an earlier stage's name. */
  from: string
  instructions: Instruction[]
}

export interface ParsedDockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>
  stages: Stage[]
}

const KNOWN = new Set(['ARG', 'FROM', 'WORKDIR', 'ENV', 'COPY', 'RUN', 'USER', 'EXPOSE', 'STOPSIGNAL', 'HEALTHCHECK', 'CMD', 'LABEL'])

export function parseDockerfile (text: string): ParsedDockerfile {
  const instructions: Instruction[] = []
  let pending = ''
  let startLine = 0
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trimEnd()
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) continue
    if (pending !== '' && line.trimStart().startsWith('#')) continue
    if (pending === '') startLine = index + 1
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `
      continue
    }
    const full = (pending + line).trim()
    pending = ''
    const space = full.search(/\s/)
    const keyword = full.slice(0, space).toUpperCase()
    if (!KNOWN.has(keyword)) throw new Error(`Dockerfile line ${startLine}: ${keyword} is not an instruction deploy/test/helpers/dockerfile.ts runs`)
    instructions.push({ keyword, args: full.slice(space).trim(), line: startLine })
  }
  const globalArgs: Record<string, string> = {}
  const stages: Stage[] = []
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(\S+)\s+AS\s+(\S+)$/i.exec(instruction.args)
      if (match === null) throw new Error(`Dockerfile line ${instruction.line}: every stage needs a name (FROM image AS name)`)
      const from = match[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced?: string, bare?: string) => globalArgs[braced ?? bare!] ?? '')
      stages.push({ name: match[2]!, from, instructions: [] })
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new Error(`Dockerfile line ${instruction.line}: only ARG may come before FROM`)
      const [name, value = ''] = instruction.args.split('=', 2) as [string, string?]
      globalArgs[name] = value
    } else {
      stages.at(-1)!.instructions.push(instruction)
    }
  }
  return { globalArgs, stages }
}

/** A JSON array (exec form) or a shell string (shell form) as argv. */
export function execForm (args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[]
  return ['/bin/sh', '-c', args]
}

export interface BuiltStage {
  name: string
  /** The folder standing for the stage's `/`. */
  root: string
  workdir: string
  env: Record<string, string>
  user: string | undefined
  cmd: string[] | undefined
  healthcheck: { options: Record<string, string>; cmd: string[] } | undefined
  exposed: string[]
  stopSignal: string | undefined
  /** What ran, in order, for the report. */
  steps: string[]
}

/** .dockerignore as Docker reads it: the last matching pattern wins; a match on a folder covers what is inside. */
export function dockerignoreMatcher (text: string): (path: string) => boolean {
  const rules = text.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#')).map((line) => {
    const negated = line.startsWith('!')
    const pattern = posix.normalize((negated ? line.slice(1) : line).replace(/^\/+/, '')).replace(/\/+$/, '')
    let source = ''
    for (let i = 0; i < pattern.length; i++) {
      const char = pattern[i]!
      if (char === '*' && pattern[i + 1] === '*') {
        // `**/` is any number of folders (none included); a trailing `**` is anything.
        if (pattern[i + 2] === '/') { source += '(?:.*/)?'; i += 2 } else { source += '.*'; i += 1 }
      } else if (char === '*') source += '[^/]*'
      else if (char === '?') source += '[^/]'
      else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    }
    return { negated, regex: new RegExp(`^${source}$`) }
  })
  return (path) => {
    const parts = path.split('/')
    let excluded = false
    for (const { negated, regex } of rules) {
      for (let depth = 1; depth <= parts.length; depth++) {
        if (regex.test(parts.slice(0, depth).join('/'))) { excluded = !negated; break }
      }
    }
    return excluded
  }
}

/** Every file under `dir` (relative paths), folders excluded. */
function filesUnder (dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((entry) => {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`
    return entry.isDirectory() ? filesUnder(dir, path) : [path]
  })
}

async function sh (command: string, cwd: string, env: Record<string, string>): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    // As in a container: no variable of the test process (tap's NODE_OPTIONS hooks included) reaches the step.
    const child = spawn('/bin/sh', ['-c', command], { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.once('error', reject)
    child.once('exit', (code) => code === 0 ? resolve() : reject(new Error(`RUN ${command} exited ${code}:\n${output.slice(-4000)}`)))
  })
}

export interface BuildOptions {
  /** The build context (the repository root). */
  context: string
  /** Where stage folders go. */
  workspace: string
  /** Extra environment for RUN (e.g. npm's prefer-offline), on top of PATH, HOME and the stage's ENV. */
  runEnv?: Record<string, string>
}

/** Builds every stage in order; returns them by name. */
export async function buildStages (parsed: ParsedDockerfile, ignoreText: string, options: BuildOptions): Promise<Map<string, BuiltStage>> {
  const ignored = dockerignoreMatcher(ignoreText)
  const contextFiles = filesUnder(options.context).filter((path) => !ignored(path))
  const built = new Map<string, BuiltStage>()
  for (const stage of parsed.stages) {
    const root = join(options.workspace, stage.name)
    const parent = built.get(stage.from)
    const state: BuiltStage = parent === undefined
      ? { name: stage.name, root, workdir: '/', env: {}, user: undefined, cmd: undefined, healthcheck: undefined, exposed: [], stopSignal: undefined, steps: [`FROM ${stage.from}`] }
      : { ...parent, name: stage.name, root, env: { ...parent.env }, exposed: [...parent.exposed], steps: [`FROM ${stage.from}`] }
    if (parent === undefined) mkdirSync(root, { recursive: true })
    else cpSync(parent.root, root, { recursive: true })
    chmodSync(root, 0o755)
    const inRoot = (path: string): string => join(root, posix.isAbsolute(path) ? path : posix.join(state.workdir, path))
    for (const { keyword, args } of stage.instructions) {
      state.steps.push(`${keyword} ${args}`)
      switch (keyword) {
        case 'WORKDIR':
          state.workdir = posix.resolve(state.workdir, args)
          mkdirSync(inRoot('.'), { recursive: true })
          break
        case 'ENV':
          for (const match of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) state.env[match[1]!] = match[2]!.replace(/^"|"$/g, '')
          break
        case 'COPY': {
          const words = args.split(/\s+/)
          const from = words[0]!.startsWith('--from=') ? words.shift()!.slice('--from='.length) : undefined
          if (words.some((word) => word.startsWith('--'))) throw new Error(`COPY ${args}: only --from is supported`)
          const destination = words.pop()!
          for (const source of words) copy(source, destination, from)
          break
        }
        case 'RUN':
          await sh(args, inRoot('.'), { ...state.env, ...options.runEnv })
          break
        case 'USER': state.user = args; break
        case 'CMD': state.cmd = execForm(args); break
        case 'EXPOSE': state.exposed.push(...args.split(/\s+/)); break
        case 'STOPSIGNAL': state.stopSignal = args; break
        case 'HEALTHCHECK': {
          const match = /^((?:--\S+\s+)*)CMD\s+(.+)$/.exec(args)
          if (match === null) throw new Error(`HEALTHCHECK ${args}: expected [--options] CMD …`)
          const healthOptions = Object.fromEntries([...match[1]!.matchAll(/--([\w-]+)=(\S+)/g)].map((option) => [option[1]!, option[2]!]))
          state.healthcheck = { options: healthOptions, cmd: execForm(match[2]!) }
          break
        }
        case 'LABEL': case 'ARG': break
        default: throw new Error(`${keyword} is not supported`)
      }
    }
    built.set(stage.name, state)

    function copy (source: string, destination: string, from: string | undefined): void {
      const target = inRoot(destination)
      if (from !== undefined) {
        const origin = built.get(from)
        if (origin === undefined) throw new Error(`COPY --from=${from}: no such stage before ${stage.name}`)
        const path = join(origin.root, source)
        if (!existsSync(path)) throw new Error(`COPY --from=${from} ${source}: not there`)
        const into = destination.endsWith('/') && !statSync(path).isDirectory() ? join(target, posix.basename(source)) : target
        mkdirSync(dirname(into), { recursive: true })
        cpSync(path, into, { recursive: true })
        return
      }
      // From the context: only what .dockerignore lets in.
      const prefix = posix.normalize(source).replace(/^\.\/?/, '').replace(/\/$/, '')
      const matching = contextFiles.filter((path) => path === prefix || path.startsWith(`${prefix}/`))
      if (matching.length === 0) throw new Error(`COPY ${source}: nothing in the build context (or all of it in .dockerignore)`)
      for (const path of matching) {
        const into = path === prefix
          ? (destination.endsWith('/') ? join(target, posix.basename(path)) : target)
          : join(target, relative(prefix, path))
        mkdirSync(dirname(into), { recursive: true })
        cpSync(join(options.context, path), into)
      }
    }
  }
  return built
}
