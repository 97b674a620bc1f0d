import { type ChatService, legError, legSignal, textOfParts } from '../dispatch/chat';
import { ClientGoneError } from '../dispatch/dispatcher';
import { errorObject, type OrcheError } from '../errors';
import type { Chunk, StreamSink } from './streamRelay';
import type { Cancel } from '../dispatch/cancel';

export type FanoutEvent = 'delta' | 'reasoning' | 'tool_call' | 'done' | 'error' | 'end';
/** Writes one named event; resolves when more may be written. */
export type FanoutEmit = (event: FanoutEvent, data: Record<string, unknown>) => Promise<void>;

export interface FanoutSummary {
  succeeded: number;
  failed: number;
  latency_ms: number;
}

/** One tool-call delta as it arrives: the first names the call (`id`, `name`), the next carry pieces of `arguments`. */
export interface ToolCallDelta {
  index: number;
  id: string | null;
  name: string | null;
  arguments: string;
}

/** What one chunk's first choice adds: content, reasoning, tool-call deltas, a finish reason. */
export interface DeltaParts {
  content: string;
  reasoning: string;
  toolCalls: ToolCallDelta[];
  finishReason: string | null;
}

/**
 * Reads a chunk's first choice. Reasoning is `delta.reasoning` (OpenRouter's); a chunk that has only
 * `reasoning_details` gives the text of those, so a model whose provider fills only one is not silent.
 */
export function deltaParts(chunk: Chunk | undefined): DeltaParts {
  const choice = Array.isArray(chunk?.choices) ? chunk.choices[0] : undefined;
  const delta = choice?.delta && typeof choice.delta === 'object' ? choice.delta : {};
  const content = typeof delta.content === 'string' ? delta.content : '';
  let reasoning = typeof delta.reasoning === 'string' ? delta.reasoning : '';
  if (reasoning === '' && Array.isArray(delta.reasoning_details)) reasoning = textOfParts(delta.reasoning_details, ['text', 'summary']);
  const toolCalls: ToolCallDelta[] = [];
  if (Array.isArray(delta.tool_calls)) {
    delta.tool_calls.forEach((raw: unknown, i: number) => {
      if (!raw || typeof raw !== 'object') return;
      const tc = raw as { index?: unknown; id?: unknown; function?: { name?: unknown; arguments?: unknown } };
      toolCalls.push({
        index: typeof tc.index === 'number' && Number.isInteger(tc.index) ? tc.index : i,
        id: typeof tc.id === 'string' ? tc.id : null,
        name: typeof tc.function?.name === 'string' ? tc.function.name : null,
        arguments: typeof tc.function?.arguments === 'string' ? tc.function.arguments : '',
      });
    });
  }
  const finishReason = typeof choice?.finish_reason === 'string' ? choice.finish_reason : null;
  return { content, reasoning, toolCalls, finishReason };
}

/** The tool calls a stream's deltas add up to, in OpenAI's message shape, for the leg's `done`. */
class ToolCalls {
  private readonly calls = new Map<number, { id: string | null; name: string; arguments: string }>();

  add(d: ToolCallDelta): void {
    const call = this.calls.get(d.index) ?? { id: null, name: '', arguments: '' };
    if (d.id !== null) call.id = d.id;
    if (d.name !== null) call.name += d.name;
    call.arguments += d.arguments;
    this.calls.set(d.index, call);
  }

  list(): unknown[] | null {
    if (this.calls.size === 0) return null;
    return [...this.calls.entries()].sort(([a], [b]) => a - b).map(([, c]) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }
}

/**
 * The same messages streamed from several providers into one stream of named events. Every leg
 * writes its events the moment they arrive, so a slow or failing provider never holds up another.
 */
export async function streamFanout(chat: ChatService, slugs: string[], body: Record<string, unknown>, timeoutMs: number | undefined, client: Cancel | undefined, emit: FanoutEmit, who?: string): Promise<FanoutSummary> {
  const started = chat.deps.now();
  const results = await Promise.all(slugs.map((slug) => leg(chat, slug, body, timeoutMs, client, emit, who)));
  const succeeded = results.filter(Boolean).length;
  const summary = { succeeded, failed: results.length - succeeded, latency_ms: chat.deps.now() - started };
  await emit('end', { ...summary });
  return summary;
}

async function leg(chat: ChatService, slug: string, body: Record<string, unknown>, timeoutMs: number | undefined, client: Cancel | undefined, emit: FanoutEmit, who?: string): Promise<boolean> {
  const started = chat.deps.now();
  const signal = legSignal(client, timeoutMs);
  const error = (e: OrcheError) => emit('error', { provider: slug, error: errorObject(e.status, e.type, e.message) });
  try {
    const opened = await chat.openStream(slug, body, signal, who);
    let finishReason: string | null = null;
    const toolCalls = new ToolCalls();
    const sink: StreamSink = {
      // Each part goes out the moment its chunk arrives: a reasoning model is not silent while it thinks.
      async event(_ev, chunk) {
        const parts = deltaParts(chunk);
        if (parts.reasoning) await emit('reasoning', { provider: slug, content: parts.reasoning });
        if (parts.content) await emit('delta', { provider: slug, content: parts.content });
        for (const tc of parts.toolCalls) {
          toolCalls.add(tc);
          await emit('tool_call', { provider: slug, ...tc });
        }
        if (parts.finishReason !== null) finishReason = parts.finishReason;
      },
      fail: (err, outcome) => emit('error', { provider: slug, error: errorObject(outcome.status, 'upstream_stream_error', err.message) }),
    };
    const end = await chat.relayStream(opened, sink, signal);
    if (end.kind === 'done') {
      const served = opened.provider.config;
      await emit('done', {
        provider: slug,
        ...(served.slug === slug ? {} : { served_by: served.slug }),
        model: end.model ?? served.model,
        finish_reason: finishReason,
        tool_calls: toolCalls.list(),
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
