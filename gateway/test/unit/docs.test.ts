// Docs: every variable in the gateway's config table has a row in the Gateway section of docs/configuration.md, and the API doc's Gateway section covers its routes.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from '../../../common/testkit/process.js'
import { COMMON_SETTINGS } from '../../../common/src/config.js'
import { SETTINGS } from '../../src/config.js'

function section (file: string, heading: string): string {
  const text = readFileSync(join(ROOT, file), 'utf8')
  const start = text.indexOf(`\n${heading}\n`)
  if (start === -1) return ''
  const next = text.indexOf('\n## ', start + heading.length + 1)
  return text.slice(start, next === -1 ? undefined : next)
}

t.test('every gateway variable is documented with its default', async (t) => {
  const docs = section('docs/configuration.md', '## Gateway')
  const shared = new Set(Object.values(COMMON_SETTINGS).map((setting) => setting.env))
  for (const setting of Object.values(SETTINGS)) {
    if (shared.has(setting.env)) continue
    t.match(docs, new RegExp(`^\\| \`${setting.env}\` \\|`, 'm'), setting.env)
    if (typeof setting.default === 'number' || typeof setting.default === 'string') {
      t.match(docs, new RegExp(`^\\| \`${setting.env}\` \\| \`${String(setting.default)}\` \\|`, 'm'), `${setting.env} default`)
    }
  }
})

t.test('the API doc covers the routes', async (t) => {
  const docs = section('docs/api.md', '## Gateway')
  for (const route of ['POST /v1/ai/generate', 'POST /v1/ai/chat', 'GET /health', 'GET /health/ready', 'GET /health/live']) {
    t.ok(docs.includes(route), route)
  }
})
