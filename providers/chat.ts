import type { RotationConfig } from '../config';
import { type Attempt, type DispatchResult, Dispatcher, type DispatchDeps } from './dispatcher';
import { OrcheError, UnknownProviderError } from './errors';
import type { KeyPool, ProviderRuntime } from './keyPool';
import { OpenRouterClient, UpstreamFailure } from './openrouterClient';
import { classifyResponse, failureOutcome, type Outcome } from './rateLimit';

export type ChatBody = Record<string, unknown> & { messages: unknown[] };

export interface FanoutResult {
  provider: string;
  model: string;
  ok: boolean;
  content?: string;
  error?: { code: number; type: string; message: string };
  latency_ms: number;
  attempts: number;
  key_id: string | null;
}

/** The first choice's text; OpenRouter may send content as parts. */
export function contentOf(body: unknown): { content: string; message: unknown; finishReason: unknown; usage: unknown; model?: string } {
  const b = (body ?? {}) as { choices?: Array<{ message?: { content?: unknown }; finish_reason?: unknown }>; usage?: unknown; model?: unknown };
  const choice = Array.isArray(b.choices) ? b.choices[0] : undefined;
  const raw = choice?.message?.content;
  const content = typeof raw === 'string' ? raw : Array.isArray(raw) ? raw.map((p: { text?: unknown }) => (typeof p?.text === 'string' ? p.text : '')).join('') : '';
  return { content, message: choice?.message ?? null, finishReason: choice?.finish_reason ?? null, usage: b.usage ?? null, model: typeof b.model === 'string' ? b.model : undefined };
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
    const lower = name.toLowerCase();
    const found = this.pool.get(lower) ?? this.pool.list().find((p) => p.config.model === name);
    if (!found) throw new UnknownProviderError(name, this.pool.list().map((p) => p.config.slug));
    return found;
  }

  /** The attempt for a JSON (non-streaming) call: the body goes upstream with the provider's model. */
  jsonAttempt(body: Record<string, unknown>): Attempt<unknown> {
    return async ({ provider, key, signal, timeoutMs }) => {
      let outcome: Outcome;
      try {
        const reply = await this.client.chat(key, { ...body, model: provider.config.model }, { timeoutMs, signal });
        outcome = classifyResponse(reply.status, reply.headers, reply.body, this.deps.now());
        return { outcome, value: reply.body };
      } catch (err) {
        if (err instanceof UpstreamFailure) return { outcome: failureOutcome(err.reason === 'timeout' ? 'timeout' : 'network', err.message) };
        throw err;
      }
    };
  }

  complete(slug: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<DispatchResult<unknown>> {
    return this.dispatcher.run(slug, this.jsonAttempt(body), signal);
  }

  /** The same messages to several providers at once; one provider's failure never fails the others. */
  async fanout(slugs: string[], body: Record<string, unknown>, timeoutMs: number | undefined, signal?: AbortSignal): Promise<FanoutResult[]> {
    return Promise.all(
      slugs.map(async (slug): Promise<FanoutResult> => {
        const provider = this.pool.get(slug)!;
        const started = this.deps.now();
        const signals = [signal, timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined].filter((s): s is AbortSignal => !!s);
        const legSignal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
        try {
          const r = await this.complete(slug, body, legSignal);
          const c = contentOf(r.value);
          return { provider: r.provider.config.slug, model: c.model ?? r.provider.config.model, ok: true, content: c.content, latency_ms: r.latencyMs, attempts: r.attempts, key_id: r.keyId };
        } catch (err) {
          const e = err instanceof OrcheError
            ? (err.type === 'client_closed_request' && !signal?.aborted ? new OrcheError(504, 'fanout_timeout', `${slug} did not answer within timeout_ms=${timeoutMs}`) : err)
            : new OrcheError(502, 'upstream_error', 'unexpected failure');
          return {
            provider: slug,
            model: provider.config.model,
            ok: false,
            error: { code: e.status, type: e.type, message: e.message },
            latency_ms: this.deps.now() - started,
            attempts: typeof e.extra.attempts === 'number' ? e.extra.attempts : 0,
            key_id: null,
          };
        }
      }),
    );
  }
}
