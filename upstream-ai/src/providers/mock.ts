/**
 * The mock provider: no network, no key. The text is derived from the
 * rendered prompt (a sha256 of the messages picks sentences from a small
 * phrase bank), so the same input always gives the same text; token counts
 * are derived from lengths (about four characters a token). Streams come in
 * several deltas with `latencyMs` between them, and stop when the caller's
 * signal aborts.
 */
import { createHash } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { usageOf, type ChatMessage, type CompletionRequest, type Provider, type StreamEvent } from './provider.js'

export interface MockProviderOptions {
  /** Delay before an answer and between stream deltas, in milliseconds. */
  latencyMs: number
  /** @default 'mock-1' */
  defaultModel?: string
}

export const MOCK_DEFAULT_MODEL = 'mock-1'

const PHRASE_BANK: readonly string[] = Object.freeze([
  'The Moon moves through your sign, bringing feelings to the surface.',
  'Venus favours honest conversations with the people closest to you.',
  'Mercury asks you to read the details twice before you sign anything.',
  'Mars lends you energy; spend it on what matters rather than on arguments.',
  'Jupiter opens a door you had stopped looking at.',
  'Saturn rewards patience and the steady work nobody sees yet.',
  'A small change in routine brings a surprisingly large relief.',
  'An old friend may reach out with news worth hearing.',
  'Trust your intuition about money, but keep a written plan.',
  'The stars suggest rest before a decision, not after it.',
  'Your warmth draws people in; let them meet the real you.',
  'Curiosity leads you somewhere useful this afternoon.',
  'A tense moment eases once someone says the obvious thing out loud.',
  'Creative ideas flow best when you stop judging them too early.',
  'Balance comes from saying no to one thing so you can say yes to another.',
  'The evening is kind to reflection and to long talks.'
])

const CHARS_PER_TOKEN = 4

/** The deterministic answer for a prompt (exported for unit tests). */
export function mockText (messages: readonly ChatMessage[], maxTokens?: number): string {
  const digest = createHash('sha256').update(JSON.stringify(messages.map(({ role, content }) => [role, content]))).digest()
  const count = 3 + (digest[0]! % 3)
  const picked: string[] = []
  const used = new Set<number>()
  for (let index = 0; picked.length < count; index++) {
    let choice = digest[1 + index]! % PHRASE_BANK.length
    while (used.has(choice)) choice = (choice + 1) % PHRASE_BANK.length
    used.add(choice)
    picked.push(PHRASE_BANK[choice]!)
  }
  const text = picked.join(' ')
  return maxTokens === undefined ? text : truncateToTokens(text, maxTokens)
}

function truncateToTokens (text: string, maxTokens: number): string {
  const maxChars = maxTokens * CHARS_PER_TOKEN
  if (text.length <= maxChars) return text
  const cut = text.slice(0, maxChars)
  const lastSpace = cut.lastIndexOf(' ')
  return lastSpace > 0 ? cut.slice(0, lastSpace) : cut
}

export function estimateTokens (text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN)
}

/** Splits text into pieces of a few words each; joined, they give the text back. */
export function splitIntoDeltas (text: string, wordsPerDelta = 4): string[] {
  const words = text.match(/\S+\s*/g) ?? []
  const deltas: string[] = []
  for (let index = 0; index < words.length; index += wordsPerDelta) {
    deltas.push(words.slice(index, index + wordsPerDelta).join(''))
  }
  return deltas
}

export function createMockProvider (options: MockProviderOptions): Provider {
  const { latencyMs } = options
  const defaultModel = options.defaultModel ?? MOCK_DEFAULT_MODEL

  const answer = (request: CompletionRequest): { text: string; inputTokens: number } => ({
    text: mockText(request.messages, request.maxTokens),
    inputTokens: request.messages.reduce((sum, message) => sum + estimateTokens(message.content), 0)
  })

  return {
    name: 'mock',
    defaultModel,

    async complete (request, signal) {
      const { text, inputTokens } = answer(request)
      await delay(latencyMs, undefined, { signal })
      return { text, usage: usageOf(inputTokens, estimateTokens(text)), model: request.model }
    },

    async * stream (request, signal): AsyncGenerator<StreamEvent> {
      const { text, inputTokens } = answer(request)
      for (const piece of splitIntoDeltas(text)) {
        await delay(latencyMs, undefined, { signal })
        yield { type: 'delta', text: piece }
      }
      signal.throwIfAborted()
      yield { type: 'done', usage: usageOf(inputTokens, estimateTokens(text)), model: request.model }
    }
  }
}
