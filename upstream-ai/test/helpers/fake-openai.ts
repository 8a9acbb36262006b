/**
 * A fake OpenAI-compatible server for tests: node:http on a loopback port 0,
 * speaking the real Chat Completions wire format. Each test scripts what it
 * answers (a JSON completion, SSE chunks with a usage chunk and
 * `data: [DONE]`, an error status and body, slow or hanging answers, a
 * stream cut mid-way) and reads back every request it received and whether
 * the caller closed it before the answer was complete.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Teardown } from '../../../common/testkit/process.js'

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The parsed JSON body (or the raw text when it was not JSON). */
  body: any
  /** The caller's source port: equal ports mean a reused (kept-alive) connection. */
  remotePort: number | undefined
  /** Date.now() when it arrived. */
  receivedAt: number
  /** Date.now() when the caller closed the connection before the answer was complete, if it did. */
  abortedAt: number | undefined
}

export interface UsageNumbers { prompt_tokens: number; completion_tokens: number; total_tokens: number }

export type FakeAnswer =
  /** A JSON body (an object is serialised; a string is sent as is) with a status. */
  | { kind: 'json'; status?: number; body: unknown; headers?: Record<string, string>; delayMs?: number }
  /** An SSE stream: one `data:` event per chunk (objects serialised, strings as is), then `data: [DONE]` unless `done` is false. */
  | {
    kind: 'sse'
    chunks: unknown[]
    intervalMs?: number
    /** false: no `data: [DONE]` at the end. */
    done?: boolean
    /** Drop the connection (no end) after this many events. */
    cutAfter?: number
    /** Wait for `gate` before sending event number `gateAt` (or before the cut): lets a test act mid-stream. */
    gate?: Promise<unknown>
    gateAt?: number
  }
  /** Never answers: headers never come. */
  | { kind: 'hang' }

export type Script = (request: RecordedRequest) => FakeAnswer

export interface FakeOpenAi {
  /** The base URL to give upstream-ai as OPENAI_BASE_URL (ends in /v1). */
  baseUrl: string
  requests: RecordedRequest[]
  /** What to answer from now on. */
  answer: (script: FakeAnswer | Script) => void
}

export function completionBody (text: string, usage: UsageNumbers, model = 'fake-model-1'): Record<string, unknown> {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage
  }
}

/** The chunks OpenAI sends for a streamed answer: a role chunk, one per piece, a finish chunk, a usage chunk. */
export function streamChunks (pieces: string[], usage: UsageNumbers, model = 'fake-model-1'): unknown[] {
  const base = { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1_700_000_000, model }
  return [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
    ...pieces.map((content) => ({ ...base, choices: [{ index: 0, delta: { content }, finish_reason: null }] })),
    { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    { ...base, choices: [], usage }
  ]
}

export async function startFakeOpenAi (t: Teardown): Promise<FakeOpenAi> {
  let script: Script = () => ({ kind: 'json', body: completionBody('default answer', { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }) })
  const requests: RecordedRequest[] = []
  const timers = new Set<NodeJS.Timeout>()
  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => { timers.delete(timer); fn() }, ms)
    timers.add(timer)
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      let body: unknown = text
      try { body = JSON.parse(text) } catch { /* kept as text */ }
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        remotePort: req.socket.remotePort,
        receivedAt: Date.now(),
        abortedAt: undefined
      }
      requests.push(recorded)
      res.on('close', () => {
        if (!res.writableFinished) recorded.abortedAt = Date.now()
      })
      play(script(recorded), res)
    })
  })

  const play = (answer: FakeAnswer, res: ServerResponse): void => {
    if (answer.kind === 'hang') return
    if (answer.kind === 'json') {
      const payload = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body)
      later(answer.delayMs ?? 0, () => {
        if (res.destroyed) return
        res.writeHead(answer.status ?? 200, { 'content-type': 'application/json', ...answer.headers })
        res.end(payload)
      })
      return
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    const events = answer.chunks.map((chunk) => `data: ${typeof chunk === 'string' ? chunk : JSON.stringify(chunk)}\n\n`)
    if (answer.done !== false) events.push('data: [DONE]\n\n')
    let index = 0
    let gated = answer.gate !== undefined
    const next = (): void => {
      if (res.destroyed) return
      if (gated && index === (answer.gateAt ?? answer.cutAfter ?? 0)) {
        gated = false
        void answer.gate!.then(next)
        return
      }
      if (answer.cutAfter !== undefined && index >= answer.cutAfter) {
        // A provider that dies mid-stream: the connection drops without an end.
        res.socket?.destroy()
        return
      }
      if (index >= events.length) { res.end(); return }
      res.write(events[index++])
      later(answer.intervalMs ?? 0, next)
    }
    next()
  }

  server.listen(0, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { server.once('listening', resolve); server.once('error', reject) })
  t.teardown(async () => {
    for (const timer of timers) clearTimeout(timer)
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    answer: (next) => { script = typeof next === 'function' ? next : () => next }
  }
}
