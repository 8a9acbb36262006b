// Request smuggling over raw sockets: Content-Length with Transfer-Encoding, conflicting lengths, unknown or doubled codings, bad chunk framing, bare LF or CR line ends, obs-fold — each a 400 with the connection closed by the gateway, and upstream-ai sees at most the one honest request sent before on the same connection; what the parser does accept is re-framed with its own Content-Length.
import t from 'tap'
import { connect } from 'node:net'
import { startUpstream, echo } from '../helpers/upstream.js'
import { startGateway, token } from '../helpers/gateway.js'

const BODY = '{"use_case":"horoscope_daily","input":{"sign":"leo"}}'
const chunked = (body: string): string => `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`

/** Writes `raw` on a fresh connection and reads until the gateway closes it (or `timeoutMs`). */
async function exchange (port: number, raw: string, timeoutMs = 3000): Promise<{ text: string; closedByServer: boolean; statuses: number[] }> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    let text = ''
    let closedByServer = false
    const timer = setTimeout(() => { socket.destroy() }, timeoutMs)
    socket.on('data', (data: Buffer) => { text += data.toString('latin1') })
    socket.on('end', () => { closedByServer = true })
    socket.on('error', () => { closedByServer = true })
    socket.on('close', () => {
      clearTimeout(timer)
      resolve({ text, closedByServer, statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1])) })
    })
    socket.write(raw, 'latin1')
  })
}

t.test('request smuggling', async (t) => {
  const upstream = await startUpstream(t, echo())
  const gateway = await startGateway(t, { AI_UPSTREAM_URL: upstream.url, AI_ENGINE_RATE_LIMIT_ENABLED: 'false' })
  const jwt = await token()
  const head = (lines: string[], eol = '\r\n'): string =>
    ['POST /v1/ai/generate HTTP/1.1', 'Host: gateway', `Authorization: Bearer ${jwt}`, 'Content-Type: application/json', ...lines].join(eol) + eol + eol
  const smuggled = head([`Content-Length: ${BODY.length}`]) + BODY

  const attacks: Array<[string, string]> = [
    ['Content-Length and Transfer-Encoding', head([`Content-Length: ${chunked(BODY).length + smuggled.length}`, 'Transfer-Encoding: chunked']) + chunked(BODY) + smuggled],
    ['Transfer-Encoding then Content-Length', head(['Transfer-Encoding: chunked', 'Content-Length: 4']) + chunked(BODY) + smuggled],
    ['two different Content-Lengths', head([`Content-Length: ${BODY.length}`, 'Content-Length: 5']) + BODY + smuggled],
    ['a Content-Length list', head([`Content-Length: ${BODY.length}, ${BODY.length}`]) + BODY],
    ['a negative Content-Length', head(['Content-Length: -1']) + BODY],
    ['a Content-Length with a sign', head([`Content-Length: +${BODY.length}`]) + BODY],
    ['Transfer-Encoding: chunked, identity (chunked not last)', head(['Transfer-Encoding: chunked, identity']) + chunked(BODY)],
    ['an unknown coding (xchunked)', head(['Transfer-Encoding: xchunked']) + chunked(BODY)],
    ['Transfer-Encoding twice', head(['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked']) + chunked(BODY)],
    ['a space before the colon', head(['Transfer-Encoding : chunked']) + chunked(BODY) + smuggled],
    ['an obs-folded Transfer-Encoding', head(['Transfer-Encoding:', ' chunked']) + chunked(BODY)],
    ['a chunk size that is not hex', head(['Transfer-Encoding: chunked']) + `zz\r\n${BODY}\r\n0\r\n\r\n`],
    ['a chunk size with 0x', head(['Transfer-Encoding: chunked']) + `0x${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`],
    ['a negative chunk size', head(['Transfer-Encoding: chunked']) + `-1\r\n${BODY}\r\n0\r\n\r\n`],
    ['a chunk size that overflows', head(['Transfer-Encoding: chunked']) + `ffffffffffffffffff${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\n\r\n`],
    ['more data than the chunk size', head(['Transfer-Encoding: chunked']) + `5\r\n${BODY}\r\n0\r\n\r\n`],
    ['a chunk without its CRLF', head(['Transfer-Encoding: chunked']) + `${BODY.length.toString(16)}\r\n${BODY}0\r\n\r\n`],
    ['chunks with bare LF', head(['Transfer-Encoding: chunked']) + `${BODY.length.toString(16)}\n${BODY}\n0\n\n`],
    ['a Content-Length in the trailer', head(['Transfer-Encoding: chunked']) + `${BODY.length.toString(16)}\r\n${BODY}\r\n0\r\nContent-Length: 200\r\n\r\n`],
    ['headers ended by bare LF', head([`Content-Length: ${BODY.length}`], '\n') + BODY],
    ['one header line ended by bare LF', head([`X-A: 1\nContent-Length: ${BODY.length}`]) + BODY],
    ['a bare CR', head([`X-A: 1\rContent-Length: ${BODY.length}`]) + BODY],
    ['a NUL in a header value', head(['X-A: a\0b', `Content-Length: ${BODY.length}`]) + BODY],
    ['a space in a header name', head(['X Y: 1', `Content-Length: ${BODY.length}`]) + BODY]
  ]

  for (const [label, raw] of attacks) {
    t.test(label, async (t) => {
      const before = upstream.requests.length
      const reply = await exchange(gateway.port, raw)
      t.same(reply.statuses, [400], 'one answer: 400')
      t.match(reply.text, /^HTTP\/1\.1 400 Bad Request\r\n/)
      t.ok(reply.closedByServer, 'the gateway closed the connection')
      t.equal(upstream.requests.length, before, 'upstream-ai saw nothing')
    })
  }

  t.test('an honest request, then a smuggling attempt on the same connection: upstream-ai sees the first only', async (t) => {
    const honest = head([`Content-Length: ${BODY.length}`, 'X-Request-Id: honest-1']) + BODY
    const attack = head([`Content-Length: ${chunked(BODY).length + smuggled.length}`, 'Transfer-Encoding: chunked', 'X-Request-Id: attack-1']) + chunked(BODY) + smuggled

    // One after the other: the honest request is answered, then the attack ends the connection.
    let before = upstream.requests.length
    const sequential = await new Promise<{ statuses: number[]; closed: boolean }>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: gateway.port })
      let text = ''
      let closed = false
      socket.on('data', (data: Buffer) => {
        text += data.toString('latin1')
        if (text.includes('"honest-1"') && !text.includes('attack')) socket.write(attack)
      })
      socket.on('end', () => { closed = true })
      socket.on('error', () => { closed = true })
      socket.on('close', () => { resolve({ statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1])), closed }) })
      socket.write(honest)
    })
    t.same(sequential.statuses, [200, 400], 'the honest one answered, then 400')
    t.ok(sequential.closed, 'and the connection closed')
    t.same(upstream.requests.slice(before).map((request) => request.headers['x-request-id']), ['honest-1'], 'exactly the honest request reached upstream-ai')

    // Pipelined in one write: the parser meets the attack before the honest request is answered, and drops the connection whole.
    before = upstream.requests.length
    const pipelined = await exchange(gateway.port, honest + attack)
    t.same(pipelined.statuses, [400])
    t.ok(pipelined.closedByServer)
    t.ok(upstream.requests.length - before <= 1, `${upstream.requests.length - before} request(s) reached upstream-ai: at most the honest one`)
    t.notOk(upstream.requests.slice(before).some((request) => request.headers['x-request-id'] !== 'honest-1'), 'never the smuggled one')
  })

  t.test('what the parser accepts (chunked after identity, a tab, chunk extensions) is re-framed: upstream-ai gets one request with its own Content-Length', async (t) => {
    for (const [label, lines, body] of [
      ['identity, chunked', ['Transfer-Encoding: identity, chunked'], chunked(BODY)],
      ['a tab before the value', ['Transfer-Encoding:\tchunked'], chunked(BODY)],
      ['a chunk extension', ['Transfer-Encoding: chunked'], `${BODY.length.toString(16)};ext=1\r\n${BODY}\r\n0\r\n\r\n`]
    ] as const) {
      const before = upstream.requests.length
      const reply = await exchange(gateway.port, head([...lines, 'Connection: close']) + body)
      t.same(reply.statuses, [200], `${label}: 200`)
      t.equal(upstream.requests.length, before + 1)
      const received = upstream.requests.at(-1)!
      t.equal(received.headers['transfer-encoding'], undefined, `${label}: no Transfer-Encoding upstream`)
      t.equal(received.headers['content-length'], String(BODY.length))
      t.equal(received.body.toString('utf8'), BODY, 'the decoded body, whole')
    }
  })
})
