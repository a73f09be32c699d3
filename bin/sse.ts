/**
 * A Server-Sent Events reader over a fetch body (the WHATWG event-stream format, enough of it
 * for our API): `event:` and `data:` fields, multi-line data, comments, any line ending. An event
 * cut off by the end of the stream is dropped, as the format says.
 */
export interface ServerSentEvent {
  /** `message` when the server named none. */
  event: string;
  data: string;
  id?: string;
}

const LINE_END = /\r\n|\r|\n/;

export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new EventParser();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (let m = LINE_END.exec(buffer); m; m = LINE_END.exec(buffer)) {
        // a trailing \r may be the first half of \r\n: wait for the next chunk to tell
        if (m[0] === '\r' && m.index === buffer.length - 1) break;
        const event = parser.line(buffer.slice(0, m.index));
        buffer = buffer.slice(m.index + m[0].length);
        if (event) yield event;
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}

/** Feeds one line at a time; a blank line completes an event. */
export class EventParser {
  private type = '';
  private data: string[] = [];
  private id: string | undefined;

  line(line: string): ServerSentEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
    return undefined;
  }

  private dispatch(): ServerSentEvent | undefined {
    const event = this.data.length > 0
      ? { event: this.type || 'message', data: this.data.join('\n'), ...(this.id !== undefined ? { id: this.id } : {}) }
      : undefined;
    this.type = '';
    this.data = [];
    return event;
  }
}
