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

/**
 * Splits text into events as it arrives; a pure state machine over strings. Only new text is
 * scanned: an unfinished line is kept as pieces and joined once its end arrives, so a long line
 * costs its length, not its length times the number of chunks it came in.
 */
export class SseParser {
  /** The unfinished line, in the pieces it came in. */
  private partial: string[] = [];
  private partialChars = 0;
  /** The unfinished line ended with "\r": its terminator is "\r\n" if the next text starts with "\n". */
  private pendingCr = false;
  private raw = '';
  private data: string[] = [];
  private event: string | undefined;
  private lines = 0;
  /** Characters examined while looking for line ends: the parser's work, for the test that it stays linear. */
  scannedChars = 0;

  constructor(private readonly maxEventChars = DEFAULT_MAX_EVENT_CHARS) {}

  /** Feeds text; returns the events it completed. */
  push(text: string): SseEvent[] {
    const out: SseEvent[] = [];
    let start = 0;
    if (this.pendingCr && text.length > 0) {
      this.pendingCr = false;
      const lf = text.charCodeAt(0) === 10;
      this.line(this.takePartial(''), lf ? '\r\n' : '\r', out);
      start = lf ? 1 : 0;
    }
    for (;;) {
      const nl = this.lineEnd(text, start);
      if (nl === null) break;
      if (nl.next < 0) {
        // A "\r" at the very end: whether "\n" follows is for the next text to tell.
        this.keep(text.slice(start, nl.at));
        this.pendingCr = true;
        start = text.length;
        break;
      }
      this.line(this.takePartial(text.slice(start, nl.at)), text.slice(nl.at, nl.next), out);
      start = nl.next;
    }
    if (start < text.length) this.keep(text.slice(start));
    if (this.raw.length + this.partialChars > this.maxEventChars) throw new SseTooLargeError(this.maxEventChars);
    return out;
  }

  /** The stream ended: a last event without its blank line still counts when it carries data. */
  end(): SseEvent[] {
    const out = this.pendingCr ? this.push('\n') : [];
    const rest = this.takePartial('');
    if (rest !== '') this.field(rest, '\n');
    const ev = this.dispatch('\n');
    if (ev && ev.data !== undefined) out.push(ev);
    return out;
  }

  private keep(piece: string): void {
    if (piece === '') return;
    this.partial.push(piece);
    this.partialChars += piece.length;
  }

  /** The unfinished line's pieces and `tail`, as one string; the pieces are then forgotten. */
  private takePartial(tail: string): string {
    if (this.partial.length === 0) return tail;
    this.partial.push(tail);
    const line = this.partial.join('');
    this.partial = [];
    this.partialChars = 0;
    return line;
  }

  private line(line: string, terminator: string, out: SseEvent[]): void {
    if (line === '') {
      const ev = this.dispatch(terminator);
      if (!ev) return;
      // Comment-only events in a row become one: a flood of `:\n\n` is one event per chunk, not
      // millions, and the raw text — what a relay forwards — is unchanged.
      const last = out[out.length - 1];
      if (ev.data === undefined && ev.event === undefined && last && last.data === undefined && last.event === undefined) last.raw += ev.raw;
      else out.push(ev);
      return;
    }
    this.field(line, terminator);
  }

  /** Where the next line ends in `text`: "\r\n", "\n" or "\r"; `next` -1 for a "\r" at the very end. */
  private lineEnd(text: string, from: number): { at: number; next: number } | null {
    for (let i = from; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.scannedChars += i + 1 - from; // once per scan, not per character
      if (c === 10) return { at: i, next: i + 1 };
      if (i + 1 >= text.length) return { at: i, next: -1 };
      return { at: i, next: text.charCodeAt(i + 1) === 10 ? i + 2 : i + 1 };
    }
    this.scannedChars += text.length - from;
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

/**
 * OpenRouter's canonical error type for a status, as its newer error bodies carry it in
 * `metadata.error_type` (shared/docs/design.md#streaming, "Errors"). @openrouter/sdk's stream-chunk schema
 * requires it whenever `metadata` is there.
 */
export function errorTypeOf(code: number): string {
  switch (code) {
    case 400: return 'invalid_request';
    case 401: return 'authentication';
    case 402: return 'payment_required';
    case 403: return 'permission_denied';
    case 404: return 'not_found';
    case 408: case 504: case 524: return 'timeout';
    case 413: return 'payload_too_large';
    case 422: return 'unprocessable';
    case 429: return 'rate_limit_exceeded';
    case 500: return 'server';
    case 502: case 503: return 'provider_unavailable';
    case 529: return 'provider_overloaded';
    default: return 'unmapped';
  }
}

/**
 * A mid-stream failure in OpenRouter's form: the status is already 200, so the error rides in a last
 * chunk, which names the stream it ends (`id`, `object`, `created`, `model`) as OpenRouter's own
 * error chunks do — clients that check chunks against a schema (@openrouter/sdk) need them, a
 * whole-number `code`, and `metadata.error_type` beside whatever else the metadata says.
 */
export function errorChunk(error: StreamError, stream: { id: string; created: number; model: string }): string {
  const numeric = typeof error.code === 'number' ? error.code : Number(error.code);
  const code = Number.isInteger(numeric) ? numeric : 502;
  const given = error.metadata?.error_type;
  const metadata = { ...error.metadata, error_type: typeof given === 'string' ? given : errorTypeOf(code) };
  return formatSse({
    id: stream.id,
    object: 'chat.completion.chunk',
    created: stream.created,
    model: stream.model,
    error: { ...error, code, metadata },
    choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }],
  });
}
