// The JSON structure guard: depth past the limit, a key repeated in one object (escapes decoded) and "__proto__" keys are found in one pass that never recurses nor throws, strings are skipped whatever they hold, and parseJsonObject refuses them, invalid UTF-8 and a byte order mark with 400 before JSON.parse runs.
import t from 'tap'
import { jsonStructureProblem, MAX_JSON_DEPTH } from '../src/json-guard.js'
import { parseJsonObject } from '../src/http.js'
import { ApiError } from '../src/errors.js'

const nested = (depth: number, open = '[', close = ']'): string => `${open.repeat(depth)}${close.repeat(depth)}`

t.test('depth', async (t) => {
  t.equal(jsonStructureProblem(nested(MAX_JSON_DEPTH)), undefined, `${MAX_JSON_DEPTH} levels pass`)
  t.equal(jsonStructureProblem(nested(MAX_JSON_DEPTH + 1)), 'depth')
  t.equal(jsonStructureProblem(`${'{"a":'.repeat(MAX_JSON_DEPTH + 1)}1${'}'.repeat(MAX_JSON_DEPTH + 1)}`), 'depth', 'objects count too')
  t.equal(jsonStructureProblem(`{"a":[${nested(10)}],"b":${nested(MAX_JSON_DEPTH - 1)}}`), undefined, 'siblings do not add up')
  const started = performance.now()
  t.equal(jsonStructureProblem(nested(500_000)), 'depth')
  t.ok(performance.now() - started < 50, 'half a million levels are refused at level 65, at once')
  t.equal(jsonStructureProblem('[' + '"[[[[[",'.repeat(1000) + '1]'), undefined, 'brackets inside strings are not structure')
  t.equal(jsonStructureProblem('["\\\\", [[]]]'), undefined, 'an escaped backslash ends before the quote')
  t.equal(jsonStructureProblem('["\\"[[[[", 1]', 3), undefined, 'an escaped quote does not end the string')
})

t.test('repeated keys', async (t) => {
  t.equal(jsonStructureProblem('{"a":1,"b":2}'), undefined)
  t.equal(jsonStructureProblem('{"a":1,"a":2}'), 'duplicate-key')
  t.equal(jsonStructureProblem('{"a":1,"\\u0061":2}'), 'duplicate-key', 'compared after unescaping')
  t.equal(jsonStructureProblem('{"a":{"x":1},"b":{"x":1}}'), undefined, 'the same key in two objects is fine')
  t.equal(jsonStructureProblem('{"a":{"x":1,"y":{"z":1}},"x":2}'), undefined, 'an inner key does not clash with an outer one')
  t.equal(jsonStructureProblem('{"list":[{"k":1},{"k":2}]}'), undefined, 'objects in an array are separate')
  t.equal(jsonStructureProblem('{"list":[{"k":1,"k":2}]}'), 'duplicate-key')
  t.equal(jsonStructureProblem('{"a":"a","b":"a"}'), undefined, 'values are not keys')
  t.equal(jsonStructureProblem('{"a":["a","a"]}'), undefined, 'nor are array items')
  t.equal(jsonStructureProblem('{"A":1,"a":2}'), undefined, 'keys are case-sensitive')
})

t.test('__proto__', async (t) => {
  t.equal(jsonStructureProblem('{"__proto__":{"admin":true}}'), 'proto-key')
  t.equal(jsonStructureProblem('{"input":[{"__proto__":1}]}'), 'proto-key', 'at any depth')
  t.equal(jsonStructureProblem('{"\\u005f_proto__":1}'), 'proto-key', 'however spelled')
  t.equal(jsonStructureProblem('{"a":"__proto__"}'), undefined, 'as a value it is just a string')
  t.equal(jsonStructureProblem('{"constructor":1,"prototype":2}'), undefined)
})

t.test('never throws on text that is not JSON', async (t) => {
  for (const text of ['', '{', '"', '{"a', '{"a\\', '}}}]]]', '{"\\u12":1}', '[[[', 'nul', '{"a":1,,}']) {
    t.doesNotThrow(() => jsonStructureProblem(text), JSON.stringify(text))
  }
})

t.test('parseJsonObject refuses before parsing', async (t) => {
  const refused = (body: Buffer | string, message: RegExp): void => {
    let thrown: unknown
    try {
      parseJsonObject(Buffer.isBuffer(body) ? body : Buffer.from(body))
    } catch (error) {
      thrown = error
    }
    t.ok(thrown instanceof ApiError && thrown.type === 'INVALID_REQUEST' && message.test(thrown.message), `refused: ${message.source}`)
  }
  refused(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), /not valid UTF-8/)
  refused(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]), /not valid UTF-8/)
  refused('\uFEFF{"a":1}', /byte order mark/)
  refused(`{"a":${nested(100)}}`, /nested more than 64/)
  refused('{"a":1,"a":2}', /repeats a key/)
  refused('{"__proto__":{}}', /__proto__/)
  t.same(parseJsonObject(Buffer.from('{"a":"é\\ud800","b":[1,{"c":null}]}')), { a: 'é\ud800', b: [1, { c: null }] }, 'valid bodies parse as before')
  t.notOk(Object.prototype.hasOwnProperty.call({}, 'admin'), 'nothing was polluted')
})
