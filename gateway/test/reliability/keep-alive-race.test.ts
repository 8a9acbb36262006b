// Keep-alive race: upstreams that close idle connections after 1 s, and a request about every second on both upstream paths (proxy and the cache's own calls) for 8 s: no 502, and upstream-ai receives each POST exactly once — whether it announces its timeout (`Keep-Alive: timeout=1`, as Node servers such as upstream-ai do) or not.
import t from 'tap'
import type { Behaviour } from '../helpers/upstream.js'
import { startUpstream } from '../helpers/upstream.js'
import { answerGenerate } from '../helpers/generate.js'
import { bearer, call, startGateway, type Reply } from '../helpers/gateway.js'

const RUN_MS = 8000
/** Senders per upstream path: enough connections that some go back to use just as the upstream closes them. */
const LANES = 6
const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** The generate answer, without the `Keep-Alive: timeout=` hint (an explicit Connection header makes Node leave it out). */
function withoutHint (behaviour: Behaviour): Behaviour {
  return async (req, res, received) => {
    res.setHeader('connection', 'keep-alive')
    await behaviour(req, res, received)
  }
}

// Both cases at once: the run is bounded by RUN_MS, not twice that.
t.jobs = 2

// Node servers announce `keepAliveTimeout` and close a second later (Node 20's HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER);
// a server that announces nothing and closes after 1 s (keepAliveTimeout of 1 ms + that second) is the harsher case.
for (const [label, hint, keepAliveTimeoutMs] of [['announced (Keep-Alive: timeout=1)', true, 1000], ['not announced, closed after 1 s', false, 1]] as const) {
  t.test(`upstream keep-alive of 1 s, ${label}`, async (t) => {
    const generate = answerGenerate()
    const upstream = await startUpstream(t, hint ? generate : withoutHint(generate), { keepAliveTimeoutMs })
    const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true', AI_ENGINE_RATE_LIMIT_ENABLED: 'false' })
    const auth = await bearer()
    const replies: Array<{ id: string; reply: Reply }> = []

    // Senders on both upstream paths, each waiting about a second (990 to 1010 ms) after its previous answer:
    // their pooled connections go idle for just about as long as the upstream keeps them.
    const sender = async (path: 'proxy' | 'cache', lane: number): Promise<void> => {
      const until = Date.now() + RUN_MS
      for (let n = 0; Date.now() < until; n++) {
        const id = `${path}-${lane}-${n}`
        // temperature > 0 is never cached: the proxy stage calls upstream; a distinct temperature-0 body is a cache miss.
        const body = path === 'proxy'
          ? { use_case: 'horoscope_daily', input: { sign: 'leo', lane, n }, options: { temperature: 0.5 } }
          : { use_case: 'horoscope_daily', input: { sign: 'virgo', lane, n } }
        replies.push({ id, reply: await call(gateway.url, '/v1/ai/generate', { headers: { ...auth, 'x-request-id': id }, body }) })
        await sleep(990 + Math.random() * 20)
      }
    }
    await Promise.all(Array.from({ length: LANES }, async (_, lane) => await Promise.all([sender('proxy', lane), sender('cache', lane)])))

    const statuses = replies.map(({ reply }) => reply.status)
    t.ok(replies.length >= LANES * 2 * 7, `${replies.length} requests`)
    t.same(statuses.filter((status) => status !== 200), [], 'every answer is a 200: no 502 from a reused, closing connection')
    const received = upstream.requests.map((request) => request.headers['x-request-id'] as string)
    t.equal(received.length, replies.length, 'upstream-ai received as many POSTs as were sent')
    t.same([...new Set(received)].sort(), replies.map(({ id }) => id).sort(), 'each exactly once: none duplicated, none lost')
    t.comment(`${upstream.connections()} upstream connections for ${received.length} requests`)
  })
}
