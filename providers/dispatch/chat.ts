import type { RotationConfig } from '../../config';
import { type Attempt, type DispatchResult, Dispatcher, type DispatchDeps } from './dispatcher';
import { errorObject, OrcheError, UnknownProviderError } from '../errors';
import type { KeyPool, ProviderRuntime } from '../keys/keyPool';
import { OpenRouterClient, UpstreamFailure } from '../upstream/openrouterClient';
import { confirmedOutcome, withKeyCheck } from '../keys/keyCheck';
import { routingFieldsIn, upstreamRequest } from '../upstream/routing';
import { blamesNoKey, classifyResponse, failureOutcome, type Outcome } from '../limits/rateLimit';
import { streamAttempt, type UpstreamStream } from '../streams/streamAttempt';
import { type RelayEnd, relayStream, type StreamSink } from '../streams/streamRelay';
import { type Cancel, signalOf } from './cancel';

export type ChatBody = Record<string, unknown> & { messages: unknown[] };

/** A JSON answer: parsed, and as it came (key material masked), so that a route relaying it need not serialise it again. */
export interface JsonAnswer {
  body: unknown;
  text: string;
}

export interface FanoutResult {
  provider: string;
  model: string;
  ok: boolean;
  content?: string;
  /** The model's reasoning as text, and OpenRouter's structured form of it (null when the model sent none). */
  reasoning?: string | null;
  reasoning_details?: unknown[] | null;
  tool_calls?: unknown[] | null;
  finish_reason?: unknown;
  /** As the upstream sent it: tokens and, on OpenRouter, `cost`. */
  usage?: unknown;
  error?: { code: number; type: string; message: string };
  latency_ms: number;
  attempts: number;
  key_id: string | null;
}

/** What an answer says, as a frontend shows it. */
export interface AnswerParts {
  content: string;
  reasoning: string | null;
  reasoningDetails: unknown[] | null;
  toolCalls: unknown[] | null;
  message: unknown;
  finishReason: unknown;
  usage: unknown;
  model?: string;
}

/** Text parts of content or of `reasoning_details` (`reasoning.text` / `reasoning.summary` entries), joined. */
export function textOfParts(parts: unknown[], fields: readonly string[]): string {
  let out = '';
  for (const p of parts) {
    if (!p || typeof p !== 'object') continue;
    for (const f of fields) {
      const v = (p as Record<string, unknown>)[f];
      if (typeof v === 'string') {
        out += v;
        break;
      }
    }
  }
  return out;
}

/**
 * The first choice of a JSON answer: its text (OpenRouter may send content as parts), reasoning
 * (`message.reasoning`; else the text of `reasoning_details`), tool calls, finish reason and usage.
 */
export function contentOf(body: unknown): AnswerParts {
  const b = (body ?? {}) as { choices?: Array<{ message?: Record<string, unknown>; finish_reason?: unknown }>; usage?: unknown; model?: unknown };
  const choice = Array.isArray(b.choices) ? b.choices[0] : undefined;
  const message = choice?.message && typeof choice.message === 'object' ? choice.message : undefined;
  const raw = message?.content;
  const content = typeof raw === 'string' ? raw : Array.isArray(raw) ? textOfParts(raw, ['text']) : '';
  const details = Array.isArray(message?.reasoning_details) && message.reasoning_details.length > 0 ? message.reasoning_details : null;
  const fromDetails = details ? textOfParts(details, ['text', 'summary']) : '';
  const reasoning = typeof message?.reasoning === 'string' && message.reasoning !== '' ? message.reasoning : fromDetails !== '' ? fromDetails : null;
  const toolCalls = Array.isArray(message?.tool_calls) && message.tool_calls.length > 0 ? message.tool_calls : null;
  return {
    content,
    reasoning,
    reasoningDetails: details,
    toolCalls,
    message: message ?? null,
    finishReason: choice?.finish_reason ?? null,
    usage: b.usage ?? null,
    model: typeof b.model === 'string' ? b.model : undefined,
  };
}

/** One fan-out leg's signal: the client's, and the leg's own timeout when one is set. */
export function legSignal(client: Cancel | undefined, timeoutMs: number | undefined): Cancel | undefined {
  if (!timeoutMs) return client;
  const timeout = AbortSignal.timeout(timeoutMs);
  return client ? AbortSignal.any([signalOf(client), timeout]) : timeout;
}

/** A fan-out leg's failure as the error it reports: its leg timeout is a timeout, not a client that left. */
export function legError(err: unknown, slug: string, timeoutMs: number | undefined, client: Cancel | undefined): OrcheError {
  if (!(err instanceof OrcheError)) return new OrcheError(502, 'upstream_error', 'unexpected failure');
  if (err.type === 'client_closed_request' && !client?.aborted) return new OrcheError(504, 'fanout_timeout', `${slug} did not answer within timeout_ms=${timeoutMs}`);
  return err;
}

/** Chat on top of the dispatcher: provider lookup, the non-streaming attempt, and fan-out. */
export class ChatService {
  readonly dispatcher: Dispatcher;

  constructor(
    readonly pool: KeyPool,
    readonly client: OpenRouterClient,
    readonly rotation: RotationConfig,
    readonly deps: DispatchDeps,
  ) {
    this.dispatcher = new Dispatcher(pool, rotation, deps);
  }

  /** Accepts the lower-case ID, its upper-case form, or a configured model slug. */
  resolve(name: string): ProviderRuntime {
    const found = this.find(name);
    if (!found) throw new UnknownProviderError(name, this.pool.list().map((p) => p.config.slug));
    return found;
  }

  /** The provider a name means, or undefined. */
  find(name: string): ProviderRuntime | undefined {
    return this.pool.get(name.toLowerCase()) ?? this.pool.list().find((p) => p.config.model === name);
  }

    /** The attempt for a JSON (non-streaming) call: the body goes upstream with the provider's model; a 401 is confirmed by GET /key. */
  jsonAttempt(body: Record<string, unknown>): Attempt<JsonAnswer> {
    return withKeyCheck(this.client, async ({ provider, key, signal, timeoutMs }) => {
      let outcome: Outcome;
      try {
        const reply = await this.client.chat(key, upstreamRequest(body, provider), { timeoutMs, signal });
        outcome = classifyResponse(reply.status, reply.headers, reply.body, this.deps.now());
        return { outcome, value: { body: reply.body, text: reply.text } };
      } catch (err) {
        if (err instanceof UpstreamFailure) {
          // An answer over the cap would be as large from any key: not retried, and no key is at fault.
          if (err.reason === 'too_large') return { outcome: { kind: 'unservable', status: 502, reason: 'upstream_too_large', message: err.message, body: undefined } };
          return { outcome: failureOutcome(err.reason === 'timeout' ? 'timeout' : 'network', err.message) };
        }
        throw err;
      }
    });
  }

  /**
   * `client`: who the request is for (fair turns while waiting for a key). A body that carries a
   * client's routing fields (ORCHE_CLIENT_ROUTING=allow) is run isolated: its answers change no shared state.
   * `deliver`: the answer's route; before the key's state takes the answer in where the store is in this process (RunOptions).
   */
  complete(slug: string, body: Record<string, unknown>, signal?: Cancel, client?: string, deliver?: (answer: DispatchResult<JsonAnswer>) => void): Promise<DispatchResult<JsonAnswer>> {
    return this.dispatcher.run(slug, this.jsonAttempt(body), signal, client, { isolated: routingFieldsIn(body).length > 0, deliver });
  }

  /** A streaming call up to its first good data event, with rotation and retries before it (docs/design.md#streaming). */
  openStream(slug: string, body: Record<string, unknown>, signal?: Cancel, client?: string): Promise<DispatchResult<UpstreamStream>> {
    return this.dispatcher.run(slug, withKeyCheck(this.client, streamAttempt(this.client, body, { now: this.deps.now })), signal, client, { isolated: routingFieldsIn(body).length > 0 });
  }

  /** Relays an opened stream to its sink, then records on the key what only the stream's end can tell: usage, or a failure. */
  async relayStream(opened: DispatchResult<UpstreamStream>, sink: StreamSink, signal?: Cancel): Promise<RelayEnd> {
    const end = await relayStream(opened.value, sink, { signal, idleTimeoutMs: this.rotation.requestTimeoutMs, maxDurationMs: this.rotation.maxStreamMs, now: this.deps.now, model: opened.provider.config.model });
    if (end.usage) this.pool.recordUsage(opened.provider, opened.keyId, end.usage, this.deps.now(), opened.client);
    // A stream orche itself ended (ORCHE_MAX_STREAM_MS) is no failure of the key.
    if (end.kind === 'failed' && !blamesNoKey(end.outcome) && !opened.isolated) {
      const key = this.pool.secret(opened.provider, opened.keyId);
      const outcome = await confirmedOutcome(this.client, key, end.outcome, this.rotation.requestTimeoutMs);
      await this.pool.recordStreamFailure(opened.provider, opened.keyId, outcome, this.deps.now());
    }
    return end;
  }

  /** The same messages to several providers at once; one provider's failure never fails the others. */
  async fanout(slugs: string[], body: Record<string, unknown>, timeoutMs: number | undefined, signal?: Cancel, client?: string): Promise<FanoutResult[]> {
    return Promise.all(
      slugs.map(async (slug): Promise<FanoutResult> => {
        const provider = this.pool.get(slug)!;
        const started = this.deps.now();
        try {
          const r = await this.complete(slug, body, legSignal(signal, timeoutMs), client);
          const c = contentOf(r.value.body);
          return {
            provider: r.provider.config.slug,
            model: c.model ?? r.provider.config.model,
            ok: true,
            content: c.content,
            reasoning: c.reasoning,
            reasoning_details: c.reasoningDetails,
            tool_calls: c.toolCalls,
            finish_reason: c.finishReason,
            usage: c.usage,
            latency_ms: r.latencyMs,
            attempts: r.attempts,
            key_id: r.keyId,
          };
        } catch (err) {
          const e = legError(err, slug, timeoutMs, signal);
          return {
            provider: slug,
            model: provider.config.model,
            ok: false,
            error: errorObject(e.status, e.type, e.message),
            latency_ms: this.deps.now() - started,
            attempts: typeof e.extra.attempts === 'number' ? e.extra.attempts : 0,
            key_id: null,
          };
        }
      }),
    );
  }
}
