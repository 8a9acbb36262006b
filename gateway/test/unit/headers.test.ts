// Header filtering: hop-by-hop headers (and those Connection names) never cross the gateway; credentials and forgeable identity headers never reach upstream-ai; the gateway's own values replace them.
import t from 'tap'
import { Socket } from 'node:net'
import { IncomingMessage } from 'node:http'
import { clientResponseHeaders, connectionOptions, upstreamRequestHeaders } from '../../src/headers.js'

function incoming (headers: Record<string, string>): IncomingMessage {
  const socket = new Socket()
  Object.defineProperty(socket, 'remoteAddress', { value: '10.1.2.3' })
  const req = new IncomingMessage(socket)
  req.headers = headers
  return req
}

t.test('connectionOptions lists the named headers, lower-cased', async (t) => {
  t.same([...connectionOptions('Keep-Alive, X-Foo ,,x-bar')!], ['keep-alive', 'x-foo', 'x-bar'])
  t.equal(connectionOptions(undefined), undefined)
})

t.test('toward upstream-ai', async (t) => {
  const req = incoming({
    host: 'gw.example', connection: 'x-foo', 'x-foo': '1', 'keep-alive': '5', te: 'trailers', trailer: 'x', 'transfer-encoding': 'chunked',
    upgrade: 'h2c', 'proxy-authorization': 'p', 'proxy-connection': 'k', authorization: 'Bearer t', cookie: 'c=1',
    'x-user-id': 'mallory', 'x-forwarded-for': '1.1.1.1', 'x-forwarded-port': '1', forwarded: 'for=1', 'x-real-ip': '1.1.1.1',
    'x-request-id': 'theirs', traceparent: 'theirs', tracestate: 'v=1', 'content-length': '999', expect: '100-continue',
    'x-trusted': 'bob', accept: 'application/json', 'x-custom': 'kept'
  })
  const headers = upstreamRequestHeaders(req, {
    userId: 'alice', requestId: 'rid', traceparent: 'tp', traceContinued: false, bodyLength: 42, trustedUserHeader: 'x-trusted'
  })
  t.same(headers, {
    accept: 'application/json',
    'x-custom': 'kept',
    'x-user-id': 'alice',
    'x-request-id': 'rid',
    traceparent: 'tp',
    'content-length': 42,
    'x-forwarded-for': '10.1.2.3',
    'x-forwarded-proto': 'http',
    'x-forwarded-host': 'gw.example'
  })
})

t.test('tracestate follows a continued trace', async (t) => {
  const headers = upstreamRequestHeaders(incoming({ tracestate: 'v=1' }), { userId: 'a', requestId: 'r', traceparent: 't', traceContinued: true, bodyLength: 0 })
  t.equal(headers.tracestate, 'v=1')
})

t.test('toward the client', async (t) => {
  t.same(clientResponseHeaders({
    connection: 'close, x-up', 'x-up': '1', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'proxy-authenticate': 'Basic',
    trailer: 'x', upgrade: 'h2c', 'x-request-id': 'upstream', 'content-type': 'application/json', 'content-length': '10', 'retry-after': '2'
  }), { 'content-type': 'application/json', 'content-length': '10', 'retry-after': '2' })
})
