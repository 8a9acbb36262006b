// The Dockerfile's own steps run here in order (npm ci, build, production-only install into a clean folder, through .dockerignore), then each image's CMD starts as its unprivileged USER and answers its HEALTHCHECK on /health/live.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, waitFor } from '../../common/testkit/ports.js'
import { ROOT, spawnProcess, type RunningProcess } from '../../common/testkit/process.js'
import { buildStages, dockerignoreMatcher, parseDockerfile, type BuiltStage } from './helpers/dockerfile.js'
import { call } from './helpers/http.js'
import { reapOnExit } from './helpers/reaper.js'

const run = promisify(execFile)
// The builder stage's `npm ci` and TypeScript build take most of a minute on a busy 2-core machine.
t.setTimeout(240_000)
const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> }
const TARGETS = ['gateway', 'upstream-ai'] as const
const asRoot = process.getuid?.() === 0

// The build itself, before any test (tap ends a file whose queued tests are done): every stage, in order.
// npm uses this machine's warm cache (an image build downloads); otherwise RUN sees only PATH, HOME and the stage's ENV.
const workspace = mkdtempSync(join(tmpdir(), 'deploy-image-'))
t.teardown(() => { rmSync(workspace, { recursive: true, force: true }) })
chmodSync(workspace, 0o755)
const started = performance.now()
const stages = await buildStages(dockerfile, dockerignore, {
  context: ROOT,
  workspace,
  runEnv: { npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' }
})
t.comment(`all ${stages.size} stages built in ${Math.round(performance.now() - started)} ms`)

t.test('the Dockerfile: current Node LTS slim base, multi-stage, non-root, health and stop signal', async (t) => {
  for (const stage of dockerfile.stages) {
    const base = dockerfile.stages.some((other) => other.name === stage.from) ? `stage ${stage.from}` : stage.from
    t.match(base, /^(stage .+|node:(22|24)-bookworm-slim)$/, `${stage.name} FROM ${base}`)
  }
  const names = dockerfile.stages.map((stage) => stage.name)
  t.same(names.slice(0, 2), ['builder', 'prod-deps'], 'builder and production dependencies first')
  const runs = (name: string): string[] => dockerfile.stages.find((stage) => stage.name === name)!.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)
  t.match(runs('builder'), [/^npm ci\b/, /^npm run build$/], 'builder: npm ci, then the build')
  t.match(runs('prod-deps'), [/^npm ci --omit=dev\b/], 'prod-deps: production dependencies only')
  for (const target of TARGETS) t.ok(names.includes(target), `a ${target} target`)
})

t.test('.dockerignore lets in the sources and keeps secrets and host builds out', async (t) => {
  const ignored = dockerignoreMatcher(dockerignore)
  for (const path of ['package.json', 'package-lock.json', 'tsconfig.json', 'gateway/src/main.ts', 'upstream-ai/src/main.ts', 'common/src/config.ts']) {
    t.notOk(ignored(path), `${path} is sent`)
  }
  for (const path of ['.env', 'compose/.env', 'gateway/.env', '.env.production', 'node_modules/ioredis/package.json', 'dist/gateway/src/main.js', '.git/config', '.tap/processinfo/x.json', 'coverage/index.html', 'docs/api.md', 'compose/docker-compose.prod.yml', 'gateway/test/integration/auth.test.ts', 'common/testkit/redis.ts']) {
    t.ok(ignored(path), `${path} is not`)
  }
})

const image = (target: string): BuiltStage => stages.get(target)!
const appDir = (stage: BuiltStage): string => join(stage.root, stage.workdir)

t.test('each runtime image holds production dependencies and the compiled service only', async (t) => {
  for (const target of TARGETS) {
    const stage = image(target)
    const modules = join(appDir(stage), 'node_modules')
    for (const name of Object.keys(pkg.dependencies)) t.ok(existsSync(join(modules, name, 'package.json')), `${target}: ${name}`)
    for (const name of Object.keys(pkg.devDependencies)) t.notOk(existsSync(join(modules, name)), `${target}: no ${name} (dev)`)
    t.same(readdirSync(join(appDir(stage), 'dist')).sort(), ['common', target].sort(), `${target}: dist holds common and ${target}`)
    t.notOk(existsSync(join(appDir(stage), 'dist', target, 'test')), `${target}: no compiled tests`)
    t.notOk(existsSync(join(appDir(stage), target, 'src')), `${target}: no TypeScript sources`)
    t.match(stage.user, /^[1-9]\d*:[1-9]\d*$/, `${target}: USER ${stage.user} is numeric and not root`)
    t.equal(stage.stopSignal, 'SIGTERM', `${target}: STOPSIGNAL SIGTERM`)
    t.equal(stage.env.NODE_ENV, 'production')
    t.match(stage.healthcheck?.cmd.join(' '), /\/health\/live/, `${target}: HEALTHCHECK on /health/live`)
    t.same(stage.cmd, ['node', `dist/${target}/src/main.js`], `${target}: CMD`)
  }
})

interface ImageProcess { process: RunningProcess; port: number; url: string; env: Record<string, string> }

/** argv run as the image's USER (setpriv, when the test is root; otherwise the test's own unprivileged user). */
function asImageUser (stage: BuiltStage, argv: string[]): [string, string[]] {
  if (!asRoot) return [argv[0]!, argv.slice(1)]
  const [uid, gid] = stage.user!.split(':')
  return ['setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...argv]]
}

async function startImage (t: Test, target: string, env: Record<string, string>): Promise<ImageProcess> {
  const stage = image(target)
  const port = await freePort()
  // The image's ENV, then what compose sets; HOST on loopback here (0.0.0.0 in the container).
  // NODE_OPTIONS emptied: tap's coverage hooks have no business in the image's process.
  const fullEnv = { NODE_OPTIONS: '', ...stage.env, HOST: '127.0.0.1', PORT: String(port), ...env }
  const running = spawnProcess(t, ...asImageUser(stage, stage.cmd!), { cwd: appDir(stage), env: fullEnv })
  reapOnExit(running.child)
  await Promise.race([
    waitFor(() => running.logs().find((line) => line.msg === 'listening'), { timeoutMs: 15_000, what: `${target} to listen` }),
    running.exited.then(({ code }) => { throw new Error(`${target} exited ${code}:\n${[...running.stdout, ...running.stderr].join('\n')}`) })
  ])
  return { process: running, port, url: `http://127.0.0.1:${port}`, env: fullEnv }
}

/** The image's HEALTHCHECK command, as Docker runs it: in the container, as its USER, with its environment. */
async function healthcheck (target: string, env: Record<string, string>): Promise<number> {
  const stage = image(target)
  const [command, args] = asImageUser(stage, stage.healthcheck!.cmd)
  try {
    await run(command, args, { cwd: appDir(stage), env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 3000 })
    return 0
  } catch (error) {
    return (error as { code?: number }).code ?? 1
  }
}

t.test('the images start as their USER, answer /health/live and their HEALTHCHECK, and stop cleanly on SIGTERM', async (t) => {
  const upstream = await startImage(t, 'upstream-ai', { ENVIRONMENT: 'production', AI_PROVIDER: 'mock' })
  const gateway = await startImage(t, 'gateway', {
    ENVIRONMENT: 'production', JWT_SECRET_KEY: randomBytes(48).toString('base64'), AI_UPSTREAM_URL: upstream.url
  })
  for (const [target, service] of [['upstream-ai', upstream], ['gateway', gateway]] as const) {
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${service.process.child.pid}/status`, 'utf8'))?.[1]
    t.not(uid, '0', `${target} runs as uid ${uid}, not root`)
    if (asRoot) t.equal(uid, image(target).user!.split(':')[0], `${target}: the Dockerfile's USER`)
    const live = await call(service.url, '/health/live')
    t.equal(live.status, 200, `${target}: /health/live`)
    t.equal(await healthcheck(target, service.env), 0, `${target}: HEALTHCHECK passes`)
  }
  const health = await call(gateway.url, '/health')
  t.equal(health.json().status, 'healthy', 'the gateway image reaches the upstream-ai image')

  // The smoke test of docs/deploy-vps.md: a token from the image's own tool, one generation.
  const [command, args] = asImageUser(image('gateway'), ['node', 'dist/gateway/src/tools/dev-token.js', 'smoke-test'])
  const { stdout: token } = await run(command, args, { cwd: appDir(image('gateway')), env: { PATH: process.env.PATH ?? '', ...gateway.env } })
  const generate = await call(gateway.url, '/v1/ai/generate', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token.trim()}` },
    body: JSON.stringify({ use_case: 'horoscope_daily', input: { sign: 'leo', date: '2026-11-26' } })
  })
  t.equal(generate.status, 200, 'a generation through both images')

  for (const [target, service] of [['gateway', gateway], ['upstream-ai', upstream]] as const) {
    const { code, signal } = await service.process.stop('SIGTERM', 10_000)
    t.same({ code, signal }, { code: 0, signal: null }, `${target}: SIGTERM (the STOPSIGNAL) drains and exits 0`)
    t.not(await healthcheck(target, service.env), 0, `${target}: HEALTHCHECK fails once it is gone`)
  }
})
