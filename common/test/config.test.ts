// The settings table: defaults, parsing, every problem reported at once naming the variable, frozen result.
import t from 'tap'
import { boolean, ConfigError, integer, list, loadSettings, number, oneOf, string, url } from '../src/config.js'

const table = {
  port: { env: 'PORT', default: 8080, parse: integer({ min: 0, max: 65535 }), description: 'port' },
  ratio: { env: 'RATIO', default: 0.5, parse: number({ min: 0, max: 1 }), description: 'ratio' },
  enabled: { env: 'ENABLED', default: true, parse: boolean(), description: 'switch' },
  mode: { env: 'MODE', default: 'memory', parse: oneOf(['memory', 'open', 'closed']), description: 'mode' },
  upstream: { env: 'UPSTREAM', default: new URL('http://127.0.0.1:8001'), parse: url(), description: 'url' },
  origins: { env: 'ORIGINS', default: [] as readonly string[], parse: list(string({ pattern: /^https?:\/\//, what: 'an origin' })), description: 'list' },
  secret: { env: 'SECRET', default: undefined, parse: string({ minLength: 4 }), description: 'optional' }
}

t.test('defaults apply when variables are unset or empty', async (t) => {
  const settings = loadSettings(table, { PORT: '', MODE: '   ' })
  t.equal(settings.port, 8080)
  t.equal(settings.ratio, 0.5)
  t.equal(settings.enabled, true)
  t.equal(settings.mode, 'memory')
  t.equal(settings.upstream.href, 'http://127.0.0.1:8001/')
  t.same(settings.origins, [])
  t.equal(settings.secret, undefined)
  t.ok(Object.isFrozen(settings))
})

t.test('values are parsed', async (t) => {
  const settings = loadSettings(table, {
    PORT: '0', RATIO: '.25', ENABLED: 'off', MODE: 'CLOSED', UPSTREAM: 'https://example.test:9000/x',
    ORIGINS: 'https://a.test, http://b.test ,', SECRET: 'abcd'
  })
  t.equal(settings.port, 0)
  t.equal(settings.ratio, 0.25)
  t.equal(settings.enabled, false)
  t.equal(settings.mode, 'closed')
  t.equal(settings.upstream.port, '9000')
  t.same(settings.origins, ['https://a.test', 'http://b.test'])
  t.equal(settings.secret, 'abcd')
})

t.test('every bad value is reported at once, naming its variable', async (t) => {
  const error = t.throws(() => loadSettings(table, {
    PORT: '80a', RATIO: '2', ENABLED: 'maybe', MODE: 'fast', UPSTREAM: 'ftp://x', ORIGINS: 'https://a.test,nope', SECRET: 'ab'
  })) as ConfigError
  t.type(error, ConfigError)
  t.equal(error.problems.length, 7)
  for (const name of ['PORT', 'RATIO', 'ENABLED', 'MODE', 'UPSTREAM', 'ORIGINS', 'SECRET']) {
    t.ok(error.problems.some((problem) => problem.startsWith(`${name}=`)), `${name} is named`)
  }
  t.match(error.message, /PORT="80a": expected an integer/)
  t.match(error.message, /RATIO="2": expected at most 1/)
  t.match(error.message, /ORIGINS="https:\/\/a.test,nope": item "nope": expected an origin/)
})

t.test('integers reject fractions and numbers reject junk', async (t) => {
  t.throws(() => integer()('1.5'))
  t.throws(() => integer()('1e3'))
  t.throws(() => number()('Infinity'))
  t.throws(() => number()('0x10'))
  t.equal(number()('-3.5'), -3.5)
  t.equal(integer({ min: -5 })('-5'), -5)
})

t.test('a sensitive setting is named in a problem, never quoted', async (t) => {
  const error = t.throws(() => loadSettings({
    database: { env: 'DATABASE_URL', default: undefined, parse: url(['postgres:']), description: 'db', sensitive: true }
  }, { DATABASE_URL: 'mysql://user:hunter2@db/x' })) as ConfigError
  t.same(error.problems, ['DATABASE_URL: expected a URL starting with postgres:'])
  t.notMatch(error.message, /hunter2/)
})
