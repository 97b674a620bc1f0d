import { type ChatService, legError, legSignal } from '../dispatch/chat';
import { ClientGoneError } from '../dispatch/dispatcher';
import type { OrcheError } from '../errors';
import type { Chunk, StreamSink } from './streamRelay';

export type FanoutEvent = 'delta' | 'done' | 'error' | 'end';
/** Writes one named event; resolves when more may be written. */
export type FanoutEmit = (event: FanoutEvent, data: Record<string, unknown>) => Promise<void>;

export interface FanoutSummary {
  succeeded: number;
  failed: number;
  latency_ms: number;
}

function deltaContent(chunk: Chunk | undefined): string {
  const content = Array.isArray(chunk?.choices) ? chunk.choices[0]?.delta?.content : undefined;
  return typeof content === 'string' ? content : '';
}

/**
 * The same messages streamed from several providers into one stream of named events. Every leg
 * writes its events the moment they arrive, so a slow or failing provider never holds up another.
 */
export async function streamFanout(chat: ChatService, slugs: string[], body: Record<string, unknown>, timeoutMs: number | undefined, client: AbortSignal | undefined, emit: FanoutEmit, who?: string): Promise<FanoutSummary> {
  const started = chat.deps.now();
  const results = await Promise.all(slugs.map((slug) => leg(chat, slug, body, timeoutMs, client, emit, who)));
  const succeeded = results.filter(Boolean).length;
  const summary = { succeeded, failed: results.length - succeeded, latency_ms: chat.deps.now() - started };
  await emit('end', { ...summary });
  return summary;
}

async function leg(chat: ChatService, slug: string, body: Record<string, unknown>, timeoutMs: number | undefined, client: AbortSignal | undefined, emit: FanoutEmit, who?: string): Promise<boolean> {
  const started = chat.deps.now();
  const signal = legSignal(client, timeoutMs);
  const error = (e: OrcheError) => emit('error', { provider: slug, error: { code: e.status, type: e.type, message: e.message } });
  try {
    const opened = await chat.openStream(slug, body, signal, who);
    const sink: StreamSink = {
      async event(_ev, chunk) {
        const content = deltaContent(chunk);
        if (content) await emit('delta', { provider: slug, content });
      },
      fail: (err, outcome) => emit('error', { provider: slug, error: { code: outcome.status, type: 'upstream_stream_error', message: err.message } }),
    };
    const end = await chat.relayStream(opened, sink, signal);
    if (end.kind === 'done') {
      const served = opened.provider.config;
      await emit('done', {
        provider: slug,
        ...(served.slug === slug ? {} : { served_by: served.slug }),
        model: end.model ?? served.model,
        usage: end.usage ?? null,
        latency_ms: chat.deps.now() - started,
        key_id: opened.keyId,
        attempts: opened.attempts,
      });
      return true;
    }
    if (end.kind === 'client_gone' && !client?.aborted) await error(legError(new ClientGoneError(), slug, timeoutMs, client));
    return false;
  } catch (err) {
    if (!client?.aborted) await error(legError(err, slug, timeoutMs, client));
    return false;
  }
}
