// Cache coalescing through the built gateway: 50 concurrent identical cacheable requests make one upstream call and all get its answer with their own request ids; an upstream error is given to every waiter and stored for none; the shared call is aborted only when every waiting client has gone.
import t from 'tap'
import { request } from 'node:http'
import { sleep } from '../../../common/testkit/ports.js'
import { hang, startUpstream } from '../helpers/upstream.js'
import { bearer, call, startGateway, token } from '../helpers/gateway.js'
import { answerError, answerGenerate, generateBody } from '../helpers/generate.js'

t.test('coalescing', async (t) => {
  const upstream = await startUpstream(t, answerGenerate({ delayMs: 500 }))
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_CACHE_ENABLED: 'true' })
  // One user each (scope global shares the answer), so the rate limit stays out of the way.
  const tokens = await Promise.all(Array.from({ length: 50 }, async (_, i) => await token({ sub: `user-${i}` })))

  t.test('50 concurrent identical requests: one upstream call, every one answered with its own ids', async (t) => {
    const body = generateBody('coalesced')
    const replies = await Promise.all(tokens.map(async (jwt, i) => await call(gateway.url, '/v1/ai/generate', {
      headers: { authorization: `Bearer ${jwt}`, 'x-request-id': `co-${i}` },
      body
    })))
    t.equal(upstream.requests.length, 1, 'one upstream call')
    t.ok(replies.every((reply) => reply.status === 200), 'all 200')
    const texts = new Set(replies.map((reply) => reply.json().text))
    t.equal(texts.size, 1, 'one answer for all')
    replies.forEach((reply, i) => {
      const meta = reply.json().meta
      if (meta.request_id !== `co-${i}`) t.fail(`reply ${i} has request id ${meta.request_id}`)
      if (meta.cached !== (reply.headers['x-cache'] === 'HIT')) t.fail(`reply ${i}: meta.cached ${meta.cached} with X-Cache ${reply.headers['x-cache']}`)
    })
    t.equal(new Set(replies.map((reply) => reply.json().meta.trace_id)).size, 50, 'each its own trace id')
    const statuses = replies.map((reply) => reply.headers['cache-status'])
    t.equal(statuses.filter((status) => status === 'ai-gateway; fwd=miss; fwd-status=200; stored').length, 1, 'one request made the call')
    t.equal(statuses.filter((status) => status === 'ai-gateway; fwd=miss; fwd-status=200; collapsed; stored').length +
      statuses.filter((status) => /^ai-gateway; hit;/.test(String(status))).length, 49, 'the others collapsed onto it (or, arriving after, hit)')
    const after = await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: 'late' }), body })
    t.equal(after.headers['x-cache'], 'HIT')
    t.equal(upstream.requests.length, 1)
  })

  t.test('an upstream error is given to every waiter and stored for none', async (t) => {
    upstream.behave(answerError(502, 'PROVIDER_ERROR', 400))
    const before = upstream.requests.length
    const body = generateBody('coalesced-error')
    const replies = await Promise.all(tokens.slice(0, 10).map(async (jwt, i) => await call(gateway.url, '/v1/ai/generate', {
      headers: { authorization: `Bearer ${jwt}`, 'x-request-id': `err-${i}` },
      body
    })))
    t.equal(upstream.requests.length - before, 1, 'one upstream call')
    replies.forEach((reply, i) => {
      t.equal(reply.status, 502)
      t.equal(reply.json().error.type, 'PROVIDER_ERROR')
      t.equal(reply.json().meta.request_id, `err-${i}`, 'its own request id')
      t.equal(reply.headers['x-cache'], 'MISS')
    })
    upstream.behave(answerGenerate())
    const retry = await call(gateway.url, '/v1/ai/generate', { headers: await bearer({ sub: 'retry' }), body })
    t.equal(retry.status, 200)
    t.equal(retry.headers['x-cache'], 'MISS', 'the error was not stored')
    t.equal(upstream.requests.length - before, 2)
  })

  t.test('the shared call is aborted only when every waiting client has gone', async (t) => {
    upstream.behave(hang())
    const before = upstream.requests.length
    const payload = JSON.stringify(generateBody('abandoned'))
    const clients = tokens.slice(0, 3).map((jwt) => {
      const req = request(`${gateway.url}/v1/ai/generate`, {
        method: 'POST', agent: false, headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
      })
      req.on('error', () => {})
      req.end(payload)
      return req
    })
    const received = await upstream.request(before + 1)
    await sleep(200)
    t.equal(upstream.requests.length - before, 1, 'one upstream call for the three')
    clients[0]!.destroy()
    clients[1]!.destroy()
    await sleep(400)
    t.equal(received.closedAt, undefined, 'still running while one client waits')
    const lastGoneAt = Date.now()
    clients[2]!.destroy()
    await upstream.closed(received, 1000)
    t.ok(received.aborted, 'aborted once the last client left')
    t.ok(received.closedAt! - lastGoneAt < 1000, `within ${received.closedAt! - lastGoneAt} ms`)
    upstream.behave(answerGenerate())
  })
})
