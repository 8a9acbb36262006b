// docs/ must describe what the code does: every error type is in docs/api.md, every env var in docs/configuration.md.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { ERROR_TYPES } from '../src/errors.js'
import { COMMON_SETTINGS, type SettingsTable } from '../src/config.js'

const root = new URL('../../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8')

t.test('every error type is documented with its status', async (t) => {
  const api = read('docs/api.md')
  for (const [type, { status }] of Object.entries(ERROR_TYPES)) {
    t.match(api, new RegExp(`\\| \`${type}\` \\| ${status} \\|`), `${type} (${status}) is in the error table`)
  }
})

async function settingsTables (): Promise<Array<[string, SettingsTable]>> {
  const tables: Array<[string, SettingsTable]> = [['shared', COMMON_SETTINGS]]
  for (const [name, path] of [['upstream-ai', '../../upstream-ai/src/config.js'], ['gateway', '../../gateway/src/config.js']] as const) {
    const module = await import(path) as { SETTINGS?: SettingsTable }
    if (module.SETTINGS === undefined) throw new Error(`${path} exports no SETTINGS table`)
    tables.push([name, module.SETTINGS])
  }
  return tables
}

t.test('every environment variable is documented', async (t) => {
  const configuration = read('docs/configuration.md')
  for (const [service, table] of await settingsTables()) {
    for (const setting of Object.values(table)) {
      t.match(configuration, new RegExp(`\\| \`${setting.env}\` \\|`), `${service}: ${setting.env} is in docs/configuration.md`)
    }
  }
})
