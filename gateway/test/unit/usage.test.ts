// Tokens used: read from a stream's `done` event as whole events pass (never from other events), or from a 2xx JSON answer's usage at its end; nothing from errors or other content types.
import t from 'tap'
import { createUsageTap, doneEventTokens, MAX_JSON_USAGE_BYTES, totalTokensOf } from '../../src/pipeline/usage.js'

const events = (text: string): Buffer => Buffer.from(text)
const done = (total: unknown): string => `event: done\ndata: ${JSON.stringify({ usage: { input_tokens: 1, output_tokens: 2, total_tokens: total }, meta: { request_id: 'r' } })}\n\n`

t.test('totalTokensOf reads usage.total_tokens only when it is a usable number', async (t) => {
  t.equal(totalTokensOf({ usage: { total_tokens: 42 } }), 42)
  t.equal(totalTokensOf({ usage: { total_tokens: 0 } }), 0)
  for (const bad of [{ usage: { total_tokens: '42' } }, { usage: { total_tokens: -1 } }, { usage: null }, { usage: [] }, null, 'x', { usage: { total_tokens: Infinity } }]) {
    t.equal(totalTokensOf(bad), undefined, JSON.stringify(bad))
  }
})

t.test('doneEventTokens parses the done event and nothing else', async (t) => {
  t.equal(doneEventTokens(events('event: delta\ndata: {"text":"Hello"}\n\n')), undefined, 'a delta')
  t.equal(doneEventTokens(events('event: delta\ndata: {"text":"well done","usage":{"total_tokens":9}}\n\n')), undefined, '"done" inside another event')
  t.equal(doneEventTokens(events(done(31))), 31)
  t.equal(doneEventTokens(events(`event: delta\ndata: {"text":"a"}\n\n${done(7)}`)), 7, 'after a delta in the same chunk')
  t.equal(doneEventTokens(events('event:done\r\ndata:{"usage":{"total_tokens":5}}\r\n\r\n')), 5, 'CRLF, no space after the colon')
  t.equal(doneEventTokens(events('event: done\ndata: {"usage":\ndata: {"total_tokens":6}}\n\n')), 6, 'data split over two lines')
  t.equal(doneEventTokens(events(': comment\nevent: done\nid: 1\ndata: {"usage":{"total_tokens":8}}\n\n')), 8, 'comments and other fields ignored')
  t.equal(doneEventTokens(events('event: done\ndata: {not json\n\n')), undefined, 'malformed done')
  t.equal(doneEventTokens(events('data: {"usage":{"total_tokens":9}}\n\n')), undefined, 'an unnamed (message) event is not done')
})

t.test('a stream tap reports the tokens as the done event passes', async (t) => {
  const seen: number[] = []
  const tap = createUsageTap({ status: 200, contentType: 'text/event-stream', stream: true }, (tokens) => seen.push(tokens))
  tap.push(events('event: delta\ndata: {"text":"a"}\n\n'))
  t.same(seen, [])
  tap.push(events(done(12)))
  t.same(seen, [12], 'reported before the end of the stream')
  tap.end()
  t.same(seen, [12])
})

t.test('a JSON tap parses the whole answer at its end, across chunks', async (t) => {
  const seen: number[] = []
  const tap = createUsageTap({ status: 200, contentType: 'application/json; charset=utf-8', stream: false }, (tokens) => seen.push(tokens))
  const body = JSON.stringify({ text: 'x'.repeat(1000), usage: { total_tokens: 15 }, meta: {} })
  tap.push(Buffer.from(body.slice(0, 500)))
  tap.push(Buffer.from(body.slice(500)))
  t.same(seen, [], 'nothing before the end')
  tap.end()
  t.same(seen, [15])
})

t.test('no tokens from errors, other content types, non-JSON or oversized answers', async (t) => {
  const seen: number[] = []
  const onTokens = (tokens: number): void => { seen.push(tokens) }
  const body = Buffer.from(JSON.stringify({ usage: { total_tokens: 3 } }))
  for (const answer of [
    { status: 500, contentType: 'application/json', stream: false },
    { status: 429, contentType: 'text/event-stream', stream: true },
    { status: 200, contentType: 'text/plain', stream: false },
    { status: 200, contentType: undefined, stream: false }
  ]) {
    const tap = createUsageTap(answer, onTokens)
    tap.push(answer.stream ? events(done(3)) : body)
    tap.end()
  }
  const garbage = createUsageTap({ status: 200, contentType: 'application/json', stream: false }, onTokens)
  garbage.push(Buffer.from('{"usage": {"total_tokens": 3'))
  garbage.end()
  const huge = createUsageTap({ status: 200, contentType: 'application/json', stream: false }, onTokens)
  huge.push(Buffer.alloc(MAX_JSON_USAGE_BYTES, 0x20))
  huge.push(body)
  huge.end()
  t.same(seen, [])
})

t.test('with a prompt estimate, a stream reports a running estimate per delta until its done event', async (t) => {
  const reported: number[] = []
  const tap = createUsageTap({ status: 200, contentType: 'text/event-stream', stream: true, promptTokens: 100 }, (tokens) => { reported.push(tokens) })
  tap.push(Buffer.from('event: delta\ndata: {"text": "abcde"}\n\n'))
  tap.push(Buffer.from(': ping\n\n'))
  tap.push(Buffer.from('event: delta\ndata: {"text": "fgh"}\n\nevent: delta\ndata: {"text": "done!"}\n\n'))
  tap.push(Buffer.from('event: done\ndata: {"usage": {"total_tokens": 7}}\n\n'))
  tap.push(Buffer.from('event: delta\ndata: {"text": "late"}\n\n'))
  t.same(reported, [102, 104, 7], 'ceil(5/4), ceil(13/4), then the real count, and nothing after it')
  const without: number[] = []
  const plain = createUsageTap({ status: 200, contentType: 'text/event-stream', stream: true }, (tokens) => { without.push(tokens) })
  plain.push(Buffer.from('event: delta\ndata: {"text": "abcde"}\n\n'))
  t.same(without, [], 'no estimate without token budgets')
})
