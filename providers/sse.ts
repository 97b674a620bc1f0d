/**
 * Server-Sent Events, read incrementally from a byte stream and written back out (WHATWG HTML §9.2).
 * Each event keeps its raw text so a relay forwards exactly what the upstream sent.
 */

export interface SseEvent {
  /** The event's text as received, through its blank line (at the end of a stream, a missing one is added). */
  raw: string;
  /** The joined `data:` lines; undefined for a block without any (a comment such as `: OPENROUTER PROCESSING`). */
  data?: string;
  /** The `event:` field, when present. */
  event?: string;
}

/** One event grew past the bound: the upstream is not speaking SSE, or is broken. */
export class SseTooLargeError extends Error {
  constructor(limit: number) {
    super(`an SSE event exceeded ${limit} characters`);
  }
}

export const DEFAULT_MAX_EVENT_CHARS = 4 * 1024 * 1024;

/** Splits text into events as it arrives; a pure state machine over strings. */
export class SseParser {
  private buffer = '';
  private raw = '';
  private data: string[] = [];
  private event: string | undefined;
  private lines = 0;

  constructor(private readonly maxEventChars = DEFAULT_MAX_EVENT_CHARS) {}

  /** Feeds text; returns the events it completed. */
  push(text: string): SseEvent[] {
    this.buffer += text;
    const out: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const nl = this.lineEnd(start);
      if (nl === null) break;
      const line = this.buffer.slice(start, nl.at);
      const terminator = this.buffer.slice(nl.at, nl.next);
      start = nl.next;
      if (line === '') {
        const ev = this.dispatch(terminator);
        if (ev) out.push(ev);
        continue;
      }
      this.field(line, terminator);
    }
    this.buffer = this.buffer.slice(start);
    if (this.raw.length + this.buffer.length > this.maxEventChars) throw new SseTooLargeError(this.maxEventChars);
    return out;
  }

  /** The stream ended: a last event without its blank line still counts when it carries data. */
  end(): SseEvent[] {
    const out = this.push(this.buffer.endsWith('\r') ? '\n' : '');
    if (this.buffer !== '') this.field(this.buffer, '\n');
    this.buffer = '';
    const ev = this.dispatch('\n');
    if (ev && ev.data !== undefined) out.push(ev);
    return out;
  }

  /** Where the next line ends: "\r\n", "\n" or "\r"; a trailing "\r" waits for the next chunk. */
  private lineEnd(from: number): { at: number; next: number } | null {
    for (let i = from; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c === 10) return { at: i, next: i + 1 };
      if (c === 13) {
        if (i + 1 >= this.buffer.length) return null;
        return { at: i, next: this.buffer.charCodeAt(i + 1) === 10 ? i + 2 : i + 1 };
      }
    }
    return null;
  }

  private field(line: string, terminator: string): void {
    this.raw += line + terminator;
    this.lines++;
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'data') this.data.push(value);
    else if (name === 'event') this.event = value;
  }

  private dispatch(blankLine: string): SseEvent | undefined {
    if (this.lines === 0) return undefined; // blank lines between events carry nothing
    const ev: SseEvent = { raw: this.raw + blankLine };
    if (this.data.length > 0) ev.data = this.data.join('\n');
    if (this.event !== undefined) ev.event = this.event;
    this.raw = '';
    this.data = [];
    this.event = undefined;
    this.lines = 0;
    return ev;
  }
}

/** The events of a byte stream, as they complete; UTF-8 split across chunks is reassembled. */
export async function* readSseEvents(source: AsyncIterable<Buffer | Uint8Array | string>, maxEventChars = DEFAULT_MAX_EVENT_CHARS): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder('utf-8');
  const parser = new SseParser(maxEventChars);
  for await (const chunk of source) {
    yield* parser.push(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
  }
  yield* parser.push(decoder.decode());
  yield* parser.end();
}

/** One event to write: an optional name and JSON data. */
export function formatSse(data: unknown, event?: string): string {
  return `${event === undefined ? '' : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`;
}

export const SSE_DONE = 'data: [DONE]\n\n';

export interface StreamError {
  code: number | string;
  message: string;
  metadata?: Record<string, unknown>;
}

/** A mid-stream failure in OpenRouter's form: the status is already 200, so the error rides in a last chunk. */
export function errorChunk(error: StreamError): string {
  return formatSse({ error, choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }] });
}
