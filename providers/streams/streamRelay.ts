import { randomUUID } from 'node:crypto';
import { capRelayed, capRelayedValue } from '../upstream/relayed';
import { carriedError, classifyResponse, failureOutcome, type Outcome } from '../limits/rateLimit';
import type { SseEvent, StreamError } from './sse';
import type { UpstreamStream } from './streamAttempt';
import type { Cancel } from '../dispatch/cancel';

/** The fields of a chat.completion.chunk the relay looks at; everything else passes through. */
export interface Chunk {
  id?: unknown;
  created?: unknown;
  model?: unknown;
  choices?: Array<{ delta?: Record<string, unknown>; finish_reason?: unknown }>;
  usage?: unknown;
}

/** Which stream a chunk belongs to, as its chunks name it: an error chunk orche writes carries the same (docs/design.md#streaming). */
export interface StreamIdentity {
  id: string;
  created: number;
  model: string;
}

/** Where a relayed stream goes: the client's SSE response, or one leg of a streaming fan-out. */
export interface StreamSink {
  /** One upstream event (keep-alive comment, chunk, or [DONE]); resolves when more may be written. */
  event(ev: SseEvent, chunk: Chunk | undefined): Promise<void>;
  /** The upstream failed after the first byte; nothing follows. `stream`: the id, created and model of the stream it ends. */
  fail(error: StreamError, outcome: Outcome, stream: StreamIdentity): Promise<void>;
}

interface Seen {
  /** From the chunk that carries it (the last one on OpenRouter, with empty `choices`). */
  usage?: unknown;
  /** The model that actually answered, as the chunks name it. */
  model?: string;
  /** The stream's id and creation time, as its chunks name them. */
  id?: string;
  created?: number;
}

export type RelayEnd =
  | (Seen & { kind: 'done' })
  | (Seen & { kind: 'failed'; outcome: Outcome })
  | (Seen & { kind: 'client_gone' });

export interface RelayOptions {
  /** Fires when the client goes away: the upstream call is aborted at once. */
  signal?: Cancel;
  /** The longest silence allowed between two upstream events. */
  idleTimeoutMs: number;
  /** The longest a relay may last, however busy the stream (ORCHE_MAX_STREAM_MS); none when unset. */
  maxDurationMs?: number;
  now: () => number;
  /** The model asked for: the identity of a stream whose chunks named none. */
  model?: string;
}

class IdleTimeout extends Error {}

async function nextWithin(up: UpstreamStream, ms: number): Promise<SseEvent | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      up.abort();
      reject(new IdleTimeout());
    }, ms);
  });
  try {
    const r = await Promise.race([up.rest.next(), idle]);
    return r.done ? undefined : r.value;
  } finally {
    clearTimeout(timer);
  }
}

function parseChunk(data: string): Chunk | undefined {
  try {
    const v: unknown = JSON.parse(data);
    return v && typeof v === 'object' ? (v as Chunk) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Passes an opened upstream stream to a sink event by event, waiting on the sink (backpressure).
 * After the first byte nothing can be retried: an upstream error chunk, a broken connection or a
 * silent upstream ends the sink with an error (docs/design.md#streaming, Streaming); the caller records the outcome.
 */
export async function relayStream(up: UpstreamStream, sink: StreamSink, opts: RelayOptions): Promise<RelayEnd> {
  const { signal } = opts;
  const onAbort = () => up.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const seen: Seen = {};
  // A stream whose chunks named no id still gets one, made once, so its error chunk is well-formed.
  let fallbackId: string | undefined;
  const identity = (): StreamIdentity => ({
    id: seen.id ?? (fallbackId ??= `gen-orche-${randomUUID()}`),
    created: seen.created ?? Math.floor(opts.now() / 1000),
    model: seen.model ?? opts.model ?? 'unknown',
  });
  const head = [...up.head];
  const endsAt = opts.maxDurationMs === undefined ? Infinity : opts.now() + opts.maxDurationMs;
  // Ended by orche's bound, not by the upstream or the key: recorded as nobody's failure.
  const tooLong = () => {
    const message = `The stream reached ORCHE_MAX_STREAM_MS (${opts.maxDurationMs} ms) and was ended`;
    return failed({ code: 504, message, metadata: { reason: 'max_stream_duration' } }, { kind: 'unservable', status: 504, reason: 'max_stream_duration', message, body: undefined });
  };
  const gone = (): RelayEnd => {
    up.abort();
    return { kind: 'client_gone', ...seen };
  };
  const failed = async (error: StreamError, outcome: Outcome): Promise<RelayEnd> => {
    up.abort();
    await sink.fail(error, outcome, identity());
    return { kind: 'failed', outcome, ...seen };
  };
  try {
    for (;;) {
      if (signal?.aborted) return gone();
      const left = endsAt - opts.now();
      if (left <= 0) return await tooLong();
      let ev: SseEvent | undefined;
      try {
        ev = head.shift() ?? (await nextWithin(up, Math.min(opts.idleTimeoutMs, left)));
      } catch (err) {
        if (signal?.aborted) return gone();
        if (err instanceof IdleTimeout && left < opts.idleTimeoutMs) return await tooLong();
        if (err instanceof IdleTimeout) {
          const message = `Upstream sent nothing for ${opts.idleTimeoutMs} ms`;
          return await failed({ code: 504, message, metadata: { reason: 'timeout' } }, failureOutcome('timeout', message));
        }
        const message = 'Upstream connection broke mid-stream';
        return await failed({ code: 502, message, metadata: { reason: 'network' } }, failureOutcome('network', message));
      }
      if (ev === undefined) {
        const message = 'Upstream stream ended without [DONE]';
        return await failed({ code: 502, message, metadata: { reason: 'truncated' } }, failureOutcome('network', message));
      }
      if (ev.data === '[DONE]') {
        await sink.event(ev, undefined);
        up.drain();
        return { kind: 'done', ...seen };
      }
      const chunk = ev.data === undefined ? undefined : parseChunk(ev.data);
      const error = carriedError(chunk);
      if (error) {
        const outcome = classifyResponse(200, {}, chunk, opts.now());
        // The upstream's own words go to the client (masked where they entered): capped like every relayed message.
        const message = typeof error.message === 'string' ? capRelayed(error.message) : 'Upstream error';
        const code = typeof error.code === 'number' || (typeof error.code === 'string' && error.code.length <= 64) ? error.code : outcome.status;
        const metadata = capRelayedValue(error.metadata) as Record<string, unknown> | undefined;
        return await failed({ code, message, ...(metadata && typeof metadata === 'object' ? { metadata } : {}) }, outcome);
      }
      if (chunk?.usage && typeof chunk.usage === 'object') seen.usage = chunk.usage;
      if (typeof chunk?.model === 'string') seen.model = chunk.model;
      if (typeof chunk?.id === 'string' && seen.id === undefined) seen.id = chunk.id;
      if (typeof chunk?.created === 'number' && Number.isFinite(chunk.created) && seen.created === undefined) seen.created = chunk.created;
      await sink.event(ev, chunk);
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
