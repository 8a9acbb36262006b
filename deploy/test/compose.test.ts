// docker-compose (Debian's, v1.29) accepts compose/docker-compose.prod.yml with .env.example and the development file alone; the interpolated result has the production shape, and .env.example, compose and both services' config tables agree.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { COMMON_SETTINGS, ConfigError, type SettingsTable } from '../../common/src/config.js'
import { loadConfig as loadGatewayConfig, SETTINGS as GATEWAY_SETTINGS } from '../../gateway/src/config.js'
import { loadConfig as loadUpstreamConfig, SETTINGS as UPSTREAM_SETTINGS } from '../../upstream-ai/src/config.js'
import { ROOT } from '../../common/testkit/process.js'
import {
  composeConfig, DEV_COMPOSE, ENV_EXAMPLE, interpolatedVariables, loadCompose, networksOf, parseEnvExample, PROD_COMPOSE,
  type ComposeService
} from './helpers/compose.js'
import { parseDockerfile } from './helpers/dockerfile.js'

const emptyDir = mkdtempSync(join(tmpdir(), 'deploy-compose-'))
t.teardown(() => { rmSync(emptyDir, { recursive: true, force: true }) })
const emptyEnv = join(emptyDir, 'empty.env')
writeFileSync(emptyEnv, '')

const prod = await loadCompose(PROD_COMPOSE, ENV_EXAMPLE)
const services = prod.services
const envExample = parseEnvExample(readFileSync(ENV_EXAMPLE, 'utf8'))
const documented = new Set(envExample.map((entry) => entry.name))

/** Published ports as `[host_ip:]published:target[/udp]`, whatever syntax docker-compose printed. */
const ports = (service: ComposeService): string[] => (service.ports ?? []).map((port) => typeof port === 'string'
  ? port
  : `${port.host_ip === undefined ? '' : `${port.host_ip}:`}${port.published ?? ''}:${port.target}${port.protocol === 'udp' ? '/udp' : ''}`)
const dependsOn = (service: ComposeService): Record<string, { condition?: string }> =>
  Array.isArray(service.depends_on) ? Object.fromEntries(service.depends_on.map((name) => [name, {}])) : service.depends_on ?? {}

t.test('docker-compose config accepts the production file with .env.example, and refuses it without the secrets', async (t) => {
  const accepted = await composeConfig(PROD_COMPOSE, ENV_EXAMPLE)
  t.ok(accepted.ok, accepted.stderr)
  const refused = await composeConfig(PROD_COMPOSE, emptyEnv)
  t.notOk(refused.ok, 'no .env: refused')
  t.match(refused.stderr, /(JWT_SECRET_KEY|REDIS_PASSWORD|POSTGRES_PASSWORD|API_IMAGE)/, `naming a missing variable: ${refused.stderr.trim()}`)
})

t.test('the development file needs no .env at all and binds loopback only', async (t) => {
  const dev = await loadCompose(DEV_COMPOSE, emptyEnv)
  t.same(Object.keys(dev.services).sort(), ['gateway', 'redis', 'upstream-ai'])
  for (const [name, service] of Object.entries(dev.services)) {
    for (const port of ports(service)) t.match(port, /^127\.0\.0\.1:/, `${name} publishes ${port} on loopback only`)
    t.ok(service.healthcheck?.test, `${name}: healthcheck`)
  }
})

t.test('services, and who publishes ports: web only (Caddy with the tls profile)', async (t) => {
  t.same(Object.keys(services).sort(), ['api', 'caddy', 'db', 'gateway', 'redis', 'upstream-ai', 'web'])
  for (const [name, service] of Object.entries(services)) {
    if (service.profiles?.includes('tls') === true) continue
    if (name === 'web') t.same(ports(service).map((port) => port.replace(/^.*:(\d+)$/, '$1')), ['80'], 'web publishes container port 80')
    else t.same(ports(service), [], `${name} publishes no port`)
  }
  t.same(services.caddy?.profiles, ['tls'], 'caddy only with --profile tls')
  t.same(ports(services.caddy!).sort(), ['443:443', '443:443/udp', '80:80'], 'caddy takes 80 and 443')
})

t.test('networks: internal has no route out; external is web\'s (and Caddy\'s); egress is upstream-ai\'s alone', async (t) => {
  t.equal(prod.networks?.internal?.internal, true, 'internal: true')
  t.notOk(prod.networks?.external?.internal, 'external reaches out')
  t.notOk(prod.networks?.egress?.internal, 'egress reaches out')
  const expected: Record<string, string[]> = {
    web: ['external', 'internal'],
    gateway: ['internal'],
    'upstream-ai': ['egress', 'internal'],
    api: ['internal'],
    redis: ['internal'],
    db: ['internal'],
    caddy: ['external']
  }
  for (const [name, networks] of Object.entries(expected)) t.same(networksOf(services[name]!).sort(), networks, `${name}: ${networks.join(', ')}`)
  // nginx.conf trusts X-Forwarded-* from Caddy's fixed address only: the two must agree.
  const caddyNetworks = services.caddy!.networks as Record<string, { ipv4_address?: string } | null>
  const caddyAddress = caddyNetworks.external?.ipv4_address
  t.equal(caddyAddress, '172.30.80.10')
  const nginx = readFileSync(join(ROOT, 'nginx/nginx.conf'), 'utf8')
  t.match(nginx, new RegExp(`^\\s*set_real_ip_from ${caddyAddress!.replace(/\./g, '\\.')};`, 'm'), 'nginx.conf trusts that address')
  t.match(prod.networks?.external?.ipam?.config?.[0]?.subnet, /^172\.30\.80\.0\/24$/, 'within the external subnet')
})

t.test('every service: healthcheck, restart policy, rotated logs; depends_on waits for healthy', async (t) => {
  for (const [name, service] of Object.entries(services)) {
    t.ok(service.healthcheck?.test !== undefined && service.healthcheck.disable !== true, `${name}: healthcheck`)
    t.equal(service.restart, 'unless-stopped', `${name}: restart unless-stopped`)
    t.equal(service.logging?.driver, 'json-file', `${name}: json-file logs`)
    t.match(service.logging?.options, { 'max-size': /^\d+m$/, 'max-file': /^\d+$/ }, `${name}: rotated`)
    for (const [dependency, { condition }] of Object.entries(dependsOn(service))) {
      t.equal(condition, 'service_healthy', `${name} waits for ${dependency} to be healthy`)
    }
  }
  t.same(Object.keys(dependsOn(services.web!)).sort(), ['api', 'gateway'])
  t.same(Object.keys(dependsOn(services.gateway!)).sort(), ['db', 'redis', 'upstream-ai'])
  t.same(Object.keys(dependsOn(services.api!)).sort(), ['db', 'redis'])
  t.same(Object.keys(dependsOn(services.caddy!)), ['web'])
})

t.test('volumes: PostgreSQL and Redis data, the web logs, nginx.conf and the frontend mounted read-only', async (t) => {
  const mounts = (service: ComposeService): Array<{ source: string; target: string; readOnly: boolean }> => (service.volumes ?? []).map((volume) => {
    if (typeof volume !== 'string') return { source: volume.source ?? '', target: volume.target, readOnly: volume.read_only === true }
    const [source, target, mode] = volume.split(':')
    return { source: source!, target: target!, readOnly: mode === 'ro' }
  })
  t.match(mounts(services.db!), [{ source: 'db-data', target: '/var/lib/postgresql/data' }], 'db: named volume')
  t.match(mounts(services.redis!), [{ source: 'redis-data', target: '/data' }], 'redis: named volume')
  const web = mounts(services.web!)
  t.ok(web.some((mount) => mount.source === join(ROOT, 'nginx/nginx.conf') && mount.target === '/etc/nginx/nginx.conf' && mount.readOnly), 'web: the shipped nginx.conf, read-only')
  t.ok(web.some((mount) => mount.source === join(ROOT, 'nginx/html') && mount.target === '/usr/share/nginx/html' && mount.readOnly), 'web: the frontend (placeholder by default), read-only')
  t.ok(web.some((mount) => mount.source === 'web-logs' && mount.target === '/var/log/web'), 'web: logs volume where nginx.conf writes them')
  t.ok(mounts(services.caddy!).some((mount) => mount.source === join(ROOT, 'compose/Caddyfile') && mount.target === '/etc/caddy/Caddyfile'), 'caddy: the shipped Caddyfile')
  for (const name of ['db-data', 'redis-data', 'web-logs', 'caddy-data']) t.ok(prod.volumes !== undefined && name in prod.volumes, `volume ${name} declared`)
})

t.test('the gateway and upstream-ai: built from the Dockerfile\'s non-root targets, hardened, drained before SIGKILL', async (t) => {
  const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
  /** The USER in force at the end of a stage (following FROM <stage> back). */
  const userOf = (name: string): string | undefined => {
    const stage = dockerfile.stages.find((candidate) => candidate.name === name)
    if (stage === undefined) return undefined
    return stage.instructions.filter((instruction) => instruction.keyword === 'USER').at(-1)?.args ?? userOf(stage.from)
  }
  for (const name of ['gateway', 'upstream-ai']) {
    const service = services[name]!
    t.equal(service.build?.target, name, `${name}: Dockerfile target ${name}`)
    t.equal(service.build?.context, resolve(ROOT), `${name}: the repository root is the context`)
    t.match(userOf(name), /^[1-9]\d*(:\d+)?$/, `${name}: image USER ${userOf(name)} is not root`)
    t.equal(service.read_only, true, `${name}: read-only root filesystem`)
    t.same(service.cap_drop, ['ALL'], `${name}: no capabilities`)
    t.ok(service.security_opt?.includes('no-new-privileges:true'), `${name}: no-new-privileges`)
    const grace = Number(/^(\d+)s$/.exec(service.stop_grace_period ?? '')?.[1])
    t.ok(grace > 25, `${name}: stop_grace_period ${service.stop_grace_period} exceeds the 25 s drain`)
    t.match(JSON.stringify(service.healthcheck?.test), /\/health\/live/, `${name}: healthcheck on /health/live`)
  }
  t.equal(services.gateway!.environment?.AI_UPSTREAM_URL, 'http://upstream-ai:8001')
})

/** The environment compose gives a service, with a secret where .env.example has a placeholder. */
function serviceEnv (name: string, overrides: Record<string, string> = {}): Record<string, string> {
  const env = Object.fromEntries(Object.entries(services[name]!.environment ?? {}).map(([key, value]) => [key, value ?? '']))
  return { ...env, ...overrides }
}

t.test('.env.example: every variable of both services and of the compose files, each commented, secrets as placeholders', async (t) => {
  const tables: Array<[string, SettingsTable]> = [['shared', COMMON_SETTINGS], ['gateway', GATEWAY_SETTINGS], ['upstream-ai', UPSTREAM_SETTINGS]]
  for (const [service, table] of tables) {
    for (const setting of Object.values(table)) t.ok(documented.has(setting.env), `${service}: ${setting.env} is in .env.example`)
  }
  for (const file of [PROD_COMPOSE, DEV_COMPOSE]) {
    for (const name of interpolatedVariables(readFileSync(file, 'utf8'))) t.ok(documented.has(name), `${file.slice(ROOT.length)}: \${${name}} is in .env.example`)
  }
  for (const entry of envExample) t.ok(entry.comment.length > 0, `${entry.name} has a comment`)
  // COMPOSE_PROJECT_NAME is read by compose itself (from compose/.env).
  const known = new Set(['COMPOSE_PROJECT_NAME', ...tables.flatMap(([, table]) => Object.values(table).map((setting) => setting.env)),
    ...interpolatedVariables(readFileSync(PROD_COMPOSE, 'utf8')), ...interpolatedVariables(readFileSync(DEV_COMPOSE, 'utf8'))])
  for (const entry of envExample) t.ok(known.has(entry.name), `${entry.name} is read by a service or a compose file`)
  const guide = readFileSync(join(ROOT, 'docs/deploy-vps.md'), 'utf8')
  for (const entry of envExample) t.match(guide, new RegExp(`\\b${entry.name}\\b`), `${entry.name} is explained in docs/deploy-vps.md`)
  const value = (name: string): string | undefined => envExample.find((entry) => entry.name === name && entry.active)?.value
  for (const secret of ['JWT_SECRET_KEY', 'REDIS_PASSWORD', 'POSTGRES_PASSWORD', 'OPENAI_API_KEY']) t.equal(value(secret), 'CHANGE_ME', `${secret} is a placeholder`)
})

t.test('compose passes every setting of each service, and what it passes is a valid configuration', async (t) => {
  for (const [name, table] of [['gateway', GATEWAY_SETTINGS], ['upstream-ai', UPSTREAM_SETTINGS]] as const) {
    const environment = services[name]!.environment ?? {}
    for (const setting of Object.values(table as SettingsTable)) t.ok(setting.env in environment, `${name}: compose sets ${setting.env}`)
  }
  // With .env.example as it is, the gateway refuses the placeholder secret: nobody runs production on it.
  t.throws(() => loadGatewayConfig(serviceEnv('gateway')), ConfigError, 'the gateway refuses JWT_SECRET_KEY=CHANGE_ME')
  t.match(String((() => { try { loadGatewayConfig(serviceEnv('gateway')) } catch (error) { return (error as Error).message } })()), /JWT_SECRET_KEY: too short/)
  // With the secrets filled in, both services accept exactly what compose gives them.
  const gateway = loadGatewayConfig(serviceEnv('gateway', { JWT_SECRET_KEY: 'x'.repeat(64) }))
  t.equal(gateway.environment, 'production')
  t.equal(gateway.port, 8080)
  t.equal(gateway.upstreamUrl.href, 'http://upstream-ai:8001/')
  t.equal(gateway.redisUrl?.hostname, 'redis', 'the gateway uses the redis service')
  const upstream = loadUpstreamConfig(serviceEnv('upstream-ai', { OPENAI_API_KEY: 'sk-test' }))
  t.equal(upstream.provider, 'openai', 'production with a key: the real provider')
  t.equal(upstream.port, 8001)
})
