// The prompt registry: the required use cases exist, rendering is stable (sorted keys), context goes to the system prompt, unknown names are unknown.
import t from 'tap'
import { createPromptRegistry, renderChat, renderGenerate } from '../../src/prompts.js'

const registry = createPromptRegistry()

t.test('the registry holds the required use cases and nothing from Object.prototype', async (t) => {
  for (const name of ['horoscope_daily', 'natal_chart_summary', 'compatibility', 'chat']) t.equal(registry.get(name)?.useCase, name)
  t.same(registry.useCases(), ['horoscope_daily', 'natal_chart_summary', 'compatibility', 'chat'])
  for (const name of ['__proto__', 'constructor', 'toString', 'HOROSCOPE_DAILY', '']) t.equal(registry.get(name), undefined, name)
})

t.test('generate renders a system and a user message; key order does not matter', async (t) => {
  const template = registry.get('horoscope_daily')!
  const first = renderGenerate(template, { sign: 'leo', date: '2026-01-01', extra: { b: 1, a: 2 } })
  const second = renderGenerate(template, { extra: { a: 2, b: 1 }, date: '2026-01-01', sign: 'leo' })
  t.same(first, second)
  t.equal(first.length, 2)
  t.same(first.map((message) => message.role), ['system', 'user'])
  t.equal(first[0]!.content, template.system)
  t.ok(first[1]!.content.startsWith(template.instruction))
  t.match(first[1]!.content, '{"date":"2026-01-01","extra":{"a":2,"b":1},"sign":"leo"}')
})

t.test('context is appended to the system prompt, stably', async (t) => {
  const template = registry.get('compatibility')!
  const [system] = renderGenerate(template, { a: 'leo' }, { z: 1, y: 'x' })
  t.ok(system!.content.startsWith(template.system))
  t.match(system!.content, '{"y":"x","z":1}')
  t.same(renderGenerate(template, { a: 'leo' }, {}), renderGenerate(template, { a: 'leo' }), 'empty context is no context')
})

t.test('a lone message is asked as itself', async (t) => {
  const [, user] = renderGenerate(registry.get('chat')!, { message: 'What is my moon sign?' })
  t.equal(user!.content, `${registry.get('chat')!.instruction}\n\nWhat is my moon sign?`)
})

t.test('chat puts the template system prompt before the conversation, unchanged', async (t) => {
  const template = registry.get('chat')!
  const conversation = [{ role: 'user' as const, content: 'hi' }, { role: 'assistant' as const, content: 'hello' }, { role: 'user' as const, content: 'and?' }]
  t.same(renderChat(template, conversation), [{ role: 'system', content: template.system }, ...conversation])
})
