/**
 * An incremental parser for `text/event-stream` as OpenAI-compatible servers
 * send it: feed it decoded text as it arrives, get back the complete events.
 * Follows the WHATWG rules that matter here: lines end in CRLF, LF or CR
 * (a CR at the end of a chunk may be half of a CRLF), `data:` lines of one
 * event are joined with LF, one space after the colon is dropped, comment
 * lines (`:`) are ignored, a blank line ends an event.
 */
export interface SseEvent {
  /** The `event:` field, `message` when absent. */
  event: string
  data: string
}

export interface SseParser {
  /** Adds text; returns the events it completed. */
  push: (text: string) => SseEvent[]
  /** The stream ended: returns a last event that lacked its blank line, if any. */
  end: () => SseEvent[]
}

export function createSseParser (): SseParser {
  let buffer = ''
  let dataLines: string[] = []
  let eventName = ''

  const dispatch = (events: SseEvent[]): void => {
    if (dataLines.length > 0) events.push({ event: eventName === '' ? 'message' : eventName, data: dataLines.join('\n') })
    dataLines = []
    eventName = ''
  }

  const processLine = (line: string, events: SseEvent[]): void => {
    if (line === '') return dispatch(events)
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') dataLines.push(value)
    else if (field === 'event') eventName = value
    // `id` and `retry` mean nothing for a single response: ignored.
  }

  return {
    push (text) {
      buffer += text
      const events: SseEvent[] = []
      let start = 0
      for (let index = 0; index < buffer.length; index++) {
        const char = buffer[index]
        if (char !== '\n' && char !== '\r') continue
        // A CR as the last character may be followed by an LF in the next chunk: wait for it.
        if (char === '\r' && index === buffer.length - 1) break
        processLine(buffer.slice(start, index), events)
        if (char === '\r' && buffer[index + 1] === '\n') index++
        start = index + 1
      }
      buffer = buffer.slice(start)
      return events
    },
    end () {
      const events: SseEvent[] = []
      if (buffer !== '') processLine(buffer.replace(/\r$/, ''), events)
      buffer = ''
      dispatch(events)
      return events
    }
  }
}
