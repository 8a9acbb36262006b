// The mock provider: the same prompt gives the same text, another prompt another text; streams in several deltas that join to the text; honours abort.
import t from 'tap'
import { createMockProvider, estimateTokens, mockText, splitIntoDeltas } from '../../src/providers/mock.js'
import type { CompletionRequest, StreamEvent } from '../../src/providers/provider.js'

const request: CompletionRequest = { messages: [{ role: 'user', content: 'Will I be lucky?' }], model: 'mock-1', temperature: 0, maxTokens: undefined }

t.test('text is deterministic and depends on the prompt', async (t) => {
  t.equal(mockText(request.messages), mockText([{ role: 'user', content: 'Will I be lucky?' }]))
  t.not(mockText(request.messages), mockText([{ role: 'user', content: 'Will I be lucky?!' }]))
  t.not(mockText(request.messages), mockText([{ role: 'system', content: 'Will I be lucky?' }]), 'the role counts')
  const sentences = mockText(request.messages).split(/(?<=[.!?;])\s+(?=[A-Z])/)
  t.ok(sentences.length >= 3 && sentences.length <= 5, `3 to 5 sentences: ${sentences.length}`)
  t.equal(new Set(sentences).size, sentences.length, 'no sentence twice')
})

t.test('max_tokens cuts at a word boundary', async (t) => {
  const full = mockText(request.messages)
  const cut = mockText(request.messages, 6)
  t.ok(cut.length <= 24)
  t.ok(full.startsWith(cut))
  t.notMatch(cut, /\s$/)
  t.equal(mockText(request.messages, 10_000), full)
})

t.test('deltas join back to the text', async (t) => {
  const text = 'one two three four five six seven eight nine'
  const deltas = splitIntoDeltas(text, 4)
  t.same(deltas, ['one two three four ', 'five six seven eight ', 'nine'])
  t.equal(deltas.join(''), text)
  t.same(splitIntoDeltas(''), [])
})

t.test('complete and stream agree; usage comes from lengths', async (t) => {
  const provider = createMockProvider({ latencyMs: 0 })
  t.equal(provider.name, 'mock')
  t.equal(provider.defaultModel, 'mock-1')
  const completion = await provider.complete(request, new AbortController().signal)
  t.equal(completion.text, mockText(request.messages))
  t.same(completion.usage, {
    input_tokens: estimateTokens('Will I be lucky?'),
    output_tokens: estimateTokens(completion.text),
    total_tokens: estimateTokens('Will I be lucky?') + estimateTokens(completion.text)
  })
  const events: StreamEvent[] = []
  for await (const event of provider.stream(request, new AbortController().signal)) events.push(event)
  const deltas = events.filter((event) => event.type === 'delta')
  t.ok(deltas.length >= 3, 'several deltas')
  t.equal(deltas.map((event) => event.type === 'delta' ? event.text : '').join(''), completion.text)
  t.same(events.at(-1), { type: 'done', usage: completion.usage, model: 'mock-1' })
})

t.test('an aborted signal stops the stream and the completion', async (t) => {
  const provider = createMockProvider({ latencyMs: 50 })
  const controller = new AbortController()
  const received: StreamEvent[] = []
  const consuming = (async () => {
    for await (const event of provider.stream(request, controller.signal)) {
      received.push(event)
      controller.abort()
    }
  })()
  await t.rejects(consuming)
  t.equal(received.length, 1, 'nothing after the abort')
  await t.rejects(provider.complete(request, AbortSignal.abort()))
})
