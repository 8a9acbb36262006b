// Request ids kept only when sane; W3C traceparent continued when valid, a new trace otherwise.
import t from 'tap'
import { formatTraceparent, parseTraceparent, requestIdFrom, traceContextFrom } from '../src/request-context.js'

t.test('request ids', async (t) => {
  t.equal(requestIdFrom('abc-123_X.y:z'), 'abc-123_X.y:z')
  t.equal(requestIdFrom('a'.repeat(128)), 'a'.repeat(128))
  for (const bad of ['a'.repeat(129), 'has space', 'new\nline', '', 'ünï', undefined, ['a', 'b']]) {
    const id = requestIdFrom(bad)
    t.not(id, bad)
    t.match(id, /^[0-9a-f-]{36}$/, `generated for ${JSON.stringify(bad)?.slice(0, 20)}`)
  }
})

t.test('traceparent', async (t) => {
  const header = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  t.same(parseTraceparent(header), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentSpanId: '00f067aa0ba902b7', flags: '01' })
  const continued = traceContextFrom(header)
  t.equal(continued.traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
  t.equal(continued.parentSpanId, '00f067aa0ba902b7')
  t.match(continued.spanId, /^[0-9a-f]{16}$/)
  t.not(continued.spanId, '00f067aa0ba902b7')
  t.equal(formatTraceparent(continued), `00-4bf92f3577b34da6a3ce929d0e0e4736-${continued.spanId}-01`)

  for (const bad of [
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',
    'garbage', undefined
  ]) {
    t.equal(parseTraceparent(bad), undefined, `rejects ${String(bad)}`)
    const fresh = traceContextFrom(bad)
    t.match(fresh.traceId, /^[0-9a-f]{32}$/)
    t.not(fresh.traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
    t.equal(fresh.parentSpanId, undefined)
  }
  t.ok(parseTraceparent('01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future'), 'a later version may append fields')
})
