// The provider-side SSE parser assembles events across arbitrary chunk boundaries, CRLF/CR/LF line ends, comments and multi-line data.
import t from 'tap'
import { createSseParser, type SseEvent } from '../../src/providers/sse-parser.js'

function parseInPieces (text: string, pieceLength: number): SseEvent[] {
  const parser = createSseParser()
  const events: SseEvent[] = []
  for (let index = 0; index < text.length; index += pieceLength) events.push(...parser.push(text.slice(index, index + pieceLength)))
  return [...events, ...parser.end()]
}

const stream = ': keep-alive comment\n\ndata: {"a":1}\n\nevent: custom\ndata: line one\ndata: line two\n\ndata:no-space\r\n\r\ndata: cr only\r\rdata: [DONE]\n\n'
const expected: SseEvent[] = [
  { event: 'message', data: '{"a":1}' },
  { event: 'custom', data: 'line one\nline two' },
  { event: 'message', data: 'no-space' },
  { event: 'message', data: 'cr only' },
  { event: 'message', data: '[DONE]' }
]

t.test('whole input at once', async (t) => {
  t.same(parseInPieces(stream, stream.length), expected)
})

t.test('every chunk size gives the same events (CRLF split across chunks included)', async (t) => {
  for (let size = 1; size <= 12; size++) t.same(parseInPieces(stream, size), expected, `pieces of ${size}`)
})

t.test('an event without its closing blank line is delivered at the end', async (t) => {
  t.same(parseInPieces('data: last', 3), [{ event: 'message', data: 'last' }])
})

t.test('events are returned as soon as they are complete', async (t) => {
  const parser = createSseParser()
  t.same(parser.push('data: one\n'), [])
  t.same(parser.push('\ndata: tw'), [{ event: 'message', data: 'one' }])
  t.same(parser.push('o\n\n'), [{ event: 'message', data: 'two' }])
  t.same(parser.end(), [])
})
