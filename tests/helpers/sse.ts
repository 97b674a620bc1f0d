import { SseParser, type SseEvent } from '../../providers/streams/sse';

export interface ReadEvent extends SseEvent {
  /** Milliseconds since the request was sent. */
  at: number;
}

export interface StreamRead {
  status: number;
  headers: Headers;
  events: ReadEvent[];
  /** The whole body as received. */
  text: string;
}

/**
 * POSTs a JSON body and reads the answer as SSE over real HTTP, event by event as it arrives.
 * `until` may stop reading early: the request is then aborted (the client goes away).
 */
export async function postSse(url: string, body: unknown, until?: (ev: ReadEvent, all: ReadEvent[]) => boolean, headers: Record<string, string> = {}): Promise<StreamRead> {
  const started = Date.now();
  const ac = new AbortController();
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body), signal: ac.signal });
  const events: ReadEvent[] = [];
  let text = '';
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const piece = decoder.decode(value, { stream: true });
    text += piece;
    for (const ev of parser.push(piece)) {
      const read = { ...ev, at: Date.now() - started };
      events.push(read);
      if (until?.(read, events)) {
        ac.abort();
        await reader.cancel().catch(() => undefined);
        return { status: res.status, headers: res.headers, events, text };
      }
    }
  }
  events.push(...parser.end().map((ev) => ({ ...ev, at: Date.now() - started })));
  return { status: res.status, headers: res.headers, events, text };
}

/** The JSON of each data event, [DONE] left out. */
export function chunks(events: SseEvent[]): Array<Record<string, unknown>> {
  return events.filter((e) => e.data !== undefined && e.data !== '[DONE]').map((e) => JSON.parse(e.data!) as Record<string, unknown>);
}

/** The text the content deltas add up to. */
export function contentOfChunks(events: SseEvent[]): string {
  return chunks(events)
    .map((c) => ((c.choices as Array<{ delta?: { content?: string } }> | undefined)?.[0]?.delta?.content) ?? '')
    .join('');
}

export async function waitFor(check: () => boolean, withinMs: number, stepMs = 10): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > withinMs) throw new Error(`condition not met within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return Date.now() - started;
}
