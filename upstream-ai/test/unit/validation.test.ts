// Request validation: valid bodies become typed requests with defaults; each invalid field is named in an INVALID_REQUEST.
import t from 'tap'
import { ApiError } from '../../../common/src/errors.js'
import { MAX_TOKENS_LIMIT, validateChatRequest, validateGenerateRequest, validateOptions } from '../../src/validation.js'

function fieldOf (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    if (error instanceof ApiError && error.type === 'INVALID_REQUEST') return String(error.extra?.field)
    throw error
  }
  return undefined
}

t.test('a full generate request', async (t) => {
  t.same(validateGenerateRequest({ use_case: 'chat', input: { a: 1 }, context: { b: 2 }, options: { temperature: 0.3, max_tokens: 10, model: 'm-1' }, extra: true }), {
    useCase: 'chat', input: { a: 1 }, context: { b: 2 }, options: { temperature: 0.3, maxTokens: 10, model: 'm-1' }
  })
})

t.test('optional fields may be absent or null', async (t) => {
  t.same(validateGenerateRequest({ use_case: 'chat', input: {}, context: null, options: null }), {
    useCase: 'chat', input: {}, context: undefined, options: { temperature: undefined, maxTokens: undefined, model: undefined }
  })
  t.same(validateOptions({ temperature: null }), { temperature: undefined, maxTokens: undefined, model: undefined })
})

t.test('chat defaults: use_case chat, stream true', async (t) => {
  const request = validateChatRequest({ messages: [{ role: 'user', content: 'hi', name: 'ignored' }] })
  t.equal(request.useCase, 'chat')
  t.equal(request.stream, true)
  t.same(request.messages, [{ role: 'user', content: 'hi' }])
  t.equal(validateChatRequest({ messages: [{ role: 'assistant', content: '' }], stream: false }).stream, false)
})

t.test('temperature bounds are inclusive', async (t) => {
  t.equal(validateOptions({ temperature: 0 }).temperature, 0)
  t.equal(validateOptions({ temperature: 2 }).temperature, 2)
  t.equal(fieldOf(() => validateOptions({ temperature: -0.01 })), 'options.temperature')
  t.equal(fieldOf(() => validateOptions({ temperature: 2.01 })), 'options.temperature')
})

t.test('max_tokens is an integer from 1 to the limit', async (t) => {
  t.equal(validateOptions({ max_tokens: 1 }).maxTokens, 1)
  t.equal(validateOptions({ max_tokens: MAX_TOKENS_LIMIT }).maxTokens, MAX_TOKENS_LIMIT)
  t.equal(fieldOf(() => validateOptions({ max_tokens: MAX_TOKENS_LIMIT + 1 })), 'options.max_tokens')
  t.equal(fieldOf(() => validateOptions({ max_tokens: '10' })), 'options.max_tokens')
})

t.test('model names are sane', async (t) => {
  t.equal(validateOptions({ model: 'llama3.1:8b-instruct' }).model, 'llama3.1:8b-instruct')
  t.equal(validateOptions({ model: 'meta-llama/Llama-3-8B' }).model, 'meta-llama/Llama-3-8B')
  t.equal(fieldOf(() => validateOptions({ model: 'has space' })), 'options.model')
  t.equal(fieldOf(() => validateOptions({ model: 'x'.repeat(129) })), 'options.model')
})

t.test('each bad field is named', async (t) => {
  t.equal(fieldOf(() => validateGenerateRequest({ use_case: null, input: {} })), 'use_case')
  t.equal(fieldOf(() => validateGenerateRequest({ use_case: 'chat', input: [] })), 'input')
  t.equal(fieldOf(() => validateGenerateRequest({ use_case: 'chat', input: null })), 'input')
  t.equal(fieldOf(() => validateChatRequest({ messages: [{ role: 'user', content: 'x' }, { role: 'user' }] })), 'messages[1].content')
  t.equal(fieldOf(() => validateChatRequest({ messages: [{ content: 'x' }] })), 'messages[0].role')
  t.equal(fieldOf(() => validateChatRequest({ messages: Array.from({ length: 1001 }, () => ({ role: 'user', content: 'x' })) })), 'messages')
  t.equal(fieldOf(() => validateChatRequest({ messages: [{ role: 'user', content: 'x' }], context: 'ctx' })), 'context')
  t.equal(fieldOf(() => validateChatRequest({ messages: [{ role: 'user', content: 'x' }], options: { top_p: 1 } })), 'options.top_p')
})
