// SSE splitting: whole events pass at once, a partial event waits for its end, and the error event never glues onto half an event.
import t from 'tap'
import { ApiError } from '../../../common/src/errors.js'
import { EventSplitter, lastEventEnd } from '../../src/pipeline/sse.js'

const text = (buffer: Buffer | undefined): string | undefined => buffer?.toString('utf8')

t.test('lastEventEnd finds the last blank line in any line-ending style', async (t) => {
  t.equal(lastEventEnd(Buffer.from('data: a\n\n')), 9)
  t.equal(lastEventEnd(Buffer.from('data: a\r\n\r\ndata: b')), 11)
  t.equal(lastEventEnd(Buffer.from('data: a\r\rdata')), 9)
  t.equal(lastEventEnd(Buffer.from('data: a\n')), -1)
})

t.test('whole events go through unchanged, without copies', async (t) => {
  const splitter = new EventSplitter()
  const chunk = Buffer.from('data: 1\n\ndata: 2\n\n')
  t.equal(splitter.push(chunk), chunk, 'the same buffer')
  t.equal(splitter.flush(), undefined)
})

t.test('a partial event waits for the rest', async (t) => {
  const splitter = new EventSplitter()
  t.equal(text(splitter.push(Buffer.from('data: 1\n\ndata: pa'))), 'data: 1\n\n')
  t.equal(splitter.push(Buffer.from('rt')), undefined)
  t.equal(text(splitter.push(Buffer.from('ial\n'))), undefined)
  t.equal(text(splitter.push(Buffer.from('\ndata: 3\n\n'))), 'data: partial\n\ndata: 3\n\n')
})

t.test('the blank line split across chunks still ends the event', async (t) => {
  const splitter = new EventSplitter()
  t.equal(splitter.push(Buffer.from('data: 1\n')), undefined)
  t.equal(text(splitter.push(Buffer.from('\n'))), 'data: 1\n\n')
})

t.test('an error drops the held partial event and starts cleanly', async (t) => {
  const splitter = new EventSplitter()
  splitter.push(Buffer.from('data: 1\n\ndata: {"half'))
  const event = splitter.errorEvent(new ApiError('UPSTREAM_UNAVAILABLE'), { request_id: 'r', trace_id: 'abc' })
  t.match(event, /^event: error\ndata: \{"error":\{"type":"UPSTREAM_UNAVAILABLE"/)
  t.ok(event.endsWith('\n\n'))
  t.same(JSON.parse(event.split('\n')[1]!.slice(6)).meta, { request_id: 'r', trace_id: 'abc' })
  t.equal(splitter.flush(), undefined)
})

t.test('at a normal end, a held unterminated event is passed on', async (t) => {
  const splitter = new EventSplitter()
  splitter.push(Buffer.from('data: last'))
  t.equal(text(splitter.flush()), 'data: last')
})
