/**
 * Writing Server-Sent Events to a client. Each event is `event: <name>` and
 * one `data:` line of JSON. Writes wait for `drain` when the client reads
 * slowly, and become no-ops once the connection is gone.
 */
import type { ServerResponse } from 'node:http'

export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  // nginx sits in front: without this it buffers the stream.
  'x-accel-buffering': 'no'
})

export function startEventStream (res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, { ...headers, ...SSE_HEADERS })
  // Send the headers now: the client learns the stream began before the first event.
  res.flushHeaders()
}

export function formatEvent (event: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so one `data:` line always suffices.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** Writes one event; resolves once the client can take more (or is gone). */
export async function writeEvent (res: ServerResponse, event: string, data: unknown): Promise<void> {
  if (res.destroyed || res.writableEnded) return
  if (res.write(formatEvent(event, data))) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}
