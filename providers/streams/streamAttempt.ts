import type { Readable } from 'node:stream';
import type { Attempt } from '../dispatch/dispatcher';
import { type OpenRouterClient, parseBody, UpstreamFailure } from '../upstream/openrouterClient';
import { classifyResponse, failureOutcome, type Headers, type Outcome } from '../limits/rateLimit';
import { HeldEvents } from './heldEvents';
import { upstreamRequest } from '../upstream/routing';
import { readSseEvents, type SseEvent } from './sse';
import { isCommitting } from './streamCommit';
import { signalOf } from '../dispatch/cancel';

/** An upstream stream whose first data event was a good one: from here on it belongs to the client. */
export interface UpstreamStream {
  /** What was read to know that: keep-alive comments and empty deltas, then the first committing event. */
  head: SseEvent[];
  /** The events after the head, as they arrive. */
  rest: AsyncIterator<SseEvent>;
  /** Ends the upstream call at once: the client left, or the stream failed. */
  abort(): void;
  /** We are done with it: let the upstream send its last bytes so the connection stays reusable. */
  drain(): void;
}

export interface StreamAttemptOptions {
  now: () => number;
}

/** An error body is read only this far: it is for classifying, not for relaying. */
const MAX_ERROR_BODY = 64 * 1024;
/** After [DONE], how long the upstream may take to close before we cut it. */
const DRAIN_MS = 1000;

function isEventStream(headers: Headers): boolean {
  const type = headers['content-type'];
  return /text\/event-stream/i.test((Array.isArray(type) ? type[0] : type) ?? '');
}

async function readBounded(stream: Readable, max: number): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of stream) {
    text += decoder.decode(chunk as Buffer, { stream: true });
    if (text.length >= max) break; // leaving the loop destroys the stream
  }
  return text.slice(0, max);
}

/**
 * The streaming attempt for the dispatcher. Nothing reaches the client until the first data event
 * has been read and judged, so every failure before it (a status, a JSON error, an error chunk such
 * as a 429, a silent or broken connection) is an ordinary outcome and the dispatcher may rotate.
 */
export function streamAttempt(client: OpenRouterClient, body: Record<string, unknown>, opts: StreamAttemptOptions): Attempt<UpstreamStream> {
  // timeoutMs: how long to wait for the first data event (the dispatcher's per-attempt timeout).
  return async ({ provider, key, signal, timeoutMs }) => {
    const controller = new AbortController();
    let timedOut = false;
    // The deadline covers the wait for the first data event only; the relay watches idleness after it.
    const deadline = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    let stream: Readable | undefined;
    // Abort first: the client then destroys the request and its socket.
    const abort = () => {
      controller.abort();
      stream?.destroy();
    };
    const noAnswer = (message: string): Outcome =>
      timedOut ? failureOutcome('timeout', `no first event within ${timeoutMs} ms`) : failureOutcome('network', message);
    try {
      const callSignal = signal ? AbortSignal.any([signalOf(signal), controller.signal]) : controller.signal;
      const reply = await client.chatStream(key, { ...upstreamRequest(body, provider), stream: true }, { timeoutMs, signal: callSignal });
      stream = reply.stream;
      if (reply.status !== 200 || !isEventStream(reply.headers)) {
        const outcome = classifyResponse(reply.status, reply.headers, parseBody(await readBounded(reply.stream, MAX_ERROR_BODY)), opts.now());
        if (outcome.kind !== 'success') return { outcome };
        return { outcome: { ...outcome, kind: 'retry', status: 502, reason: 'not_a_stream', message: 'Upstream answered a stream request with plain JSON' } };
      }
      const events = readSseEvents(reply.stream)[Symbol.asyncIterator]();
      // What is read before the commit point is held, within a bound (docs/design.md#streaming).
      const held = new HeldEvents();
      for (;;) {
        const next = await events.next();
        if (next.done) return { outcome: { kind: 'retry', status: 502, reason: 'empty_stream', message: 'Upstream stream ended before any data' } };
        const data = next.value.data;
        if (data === undefined) {
          held.hold(next.value); // `: OPENROUTER PROCESSING` keep-alives; beyond the bound, dropped
          continue;
        }
        // An error before the stream commits is treated like its status: a 429 chunk rotates like a 429 answer.
        const chunk = data === '[DONE]' ? {} : parseBody(data);
        const outcome = classifyResponse(200, reply.headers, chunk, opts.now());
        if (outcome.kind !== 'success') {
          abort();
          return { outcome };
        }
        // The empty role delta commits nothing: held, and replayed to the client with what follows —
        // unless the held events reach the bound: then it commits here rather than being held without end.
        if (data !== '[DONE]' && !isCommitting(chunk) && held.hold(next.value)) continue;
        const head = held.commit(next.value);
        return { outcome, value: { head, rest: events, abort, drain: () => drain(events, abort) } };
      }
    } catch (err) {
      abort();
      return { outcome: noAnswer(err instanceof UpstreamFailure ? err.message : 'upstream stream broke before its first event') };
    } finally {
      clearTimeout(deadline);
    }
  };
}

function drain(events: AsyncIterator<SseEvent>, abort: () => void): void {
  const timer = setTimeout(abort, DRAIN_MS);
  void (async () => {
    try {
      while (!(await events.next()).done);
    } catch {
      // already gone
    } finally {
      clearTimeout(timer);
    }
  })();
}
