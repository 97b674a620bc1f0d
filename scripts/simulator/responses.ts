/** Bodies OpenRouter answers with: successes, stream events and error bodies, as strings ready to send. */
import type { LimitHit } from './limits';

export type Headers = Record<string, string>;

/** One answer to send as JSON: status, extra headers, body text and the call's recorded outcome. */
export interface Reply {
  status: number;
  headers: Headers;
  body: string;
  outcome: string;
}

export const PROVIDER = 'SimProvider';

/** OpenRouter's error body; the top-level `user_id` names the account owning the key (omitted for unknown keys). */
export function errorBody(
  code: number,
  message: string,
  metadata: Record<string, unknown> | undefined,
  userId: string | undefined,
  extra?: Record<string, unknown>,
): string {
  const error: Record<string, unknown> = { code, message };
  if (metadata !== undefined) error.metadata = metadata;
  if (extra !== undefined) Object.assign(error, extra);
  return JSON.stringify(userId === undefined ? { error } : { error, user_id: userId });
}

export function errorReply(status: number, message: string, userId: string | undefined, outcome: string): Reply {
  return { status, headers: {}, body: errorBody(status, message, undefined, userId), outcome };
}

/** X-RateLimit-* as OpenRouter sends them on its own 429s: strings, reset in epoch milliseconds. */
export function rateLimitHeaders(limit: number, resetAt: number): Headers {
  return { 'X-RateLimit-Limit': String(limit), 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(resetAt) };
}

export function retryAfterSeconds(resetAt: number, now: number): string {
  return String(Math.max(1, Math.ceil((resetAt - now) / 1000)));
}

/** The 429 OpenRouter sends for a per-key limit or an account's free-model limit, byte for byte. */
export function limitReply(hit: LimitHit, userId: string, highBalance: boolean): Reply {
  const headers = rateLimitHeaders(hit.limit, hit.resetAt);
  let metadata: Record<string, unknown>;
  let message: string;
  if (hit.outcome === 'free-per-min') {
    message = 'Rate limit exceeded: free-models-per-min. ';
    metadata = { headers, provider_name: null };
  } else if (hit.outcome === 'free-per-day') {
    if (highBalance) {
      message = 'Rate limit exceeded: free-models-per-day-high-balance.';
      metadata = { headers, provider_name: null, limit_source: 'openrouter_free_tier_daily' };
    } else {
      message = 'Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day';
      metadata = { headers, provider_name: null };
    }
  } else {
    message = 'Rate limit exceeded';
    metadata = { headers };
  }
  return { status: 429, headers: { ...headers }, body: errorBody(429, message, metadata, userId), outcome: hit.outcome };
}

export function contentFor(model: string, seq: number): string {
  return `Hello from ${model} (sim #${seq})`;
}

/** A rough token count: OpenRouter's is the provider's; tests only need it stable. */
export function promptTokens(body: unknown): number {
  const messages = (body as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(messages)) return 1;
  let chars = 0;
  for (const m of messages) {
    const content = (m as { content?: unknown } | null)?.content;
    if (typeof content === 'string') chars += content.length;
  }
  return Math.max(1, Math.ceil(chars / 4));
}

function usage(prompt: number, completion: number) {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, cost: 0 };
}

export function successBody(seq: number, model: string, created: number, content: string, prompt: number): string {
  return JSON.stringify({
    id: `gen-${seq}`,
    object: 'chat.completion',
    created,
    model,
    provider: PROVIDER,
    choices: [{ index: 0, finish_reason: 'stop', native_finish_reason: 'stop', message: { role: 'assistant', content } }],
    usage: usage(prompt, completionTokens(content)),
  });
}

export function completionTokens(content: string): number {
  return Math.max(1, Math.ceil(content.length / 4));
}

/** `content` cut into `n` consecutive pieces (some empty when n exceeds its length). */
export function splitContent(content: string, n: number): string[] {
  const count = Math.max(1, Math.floor(n));
  const size = Math.ceil(content.length / count);
  const pieces: string[] = [];
  for (let i = 0; i < count; i++) pieces.push(content.slice(i * size, (i + 1) * size));
  return pieces;
}

export const PROCESSING_COMMENT = ': OPENROUTER PROCESSING\n\n';
export const DONE_EVENT = 'data: [DONE]\n\n';

function event(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

interface ChunkHead { id: string; object: 'chat.completion.chunk'; created: number; model: string; provider: string }

export function chunkHead(seq: number, model: string, created: number): ChunkHead {
  return { id: `gen-${seq}`, object: 'chat.completion.chunk', created, model, provider: PROVIDER };
}

export function contentEvent(head: ChunkHead, piece: string): string {
  return event({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: piece }, finish_reason: null }] });
}

/** Real OpenRouter streams open with an empty assistant delta before any content. */
export function roleEvent(head: ChunkHead): string {
  return event({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, native_finish_reason: null }] });
}

export function finishEvent(head: ChunkHead): string {
  return event({
    ...head,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: 'stop', native_finish_reason: 'stop' }],
  });
}

/** Usage arrives once, in a last chunk whose `choices` is empty. */
export function usageEvent(head: ChunkHead, prompt: number, completion: number): string {
  return event({ ...head, choices: [], usage: usage(prompt, completion) });
}

/** A mid-stream failure: the status is already 200, so the error rides in a final chunk. */
export function errorEvent(head: ChunkHead, code: number, message: string, metadata: Record<string, unknown> | undefined): string {
  return event({
    ...head,
    error: metadata === undefined ? { code, message } : { code, message, metadata },
    choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }],
  });
}

export const GARBAGE_HTML =
  '<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n' +
  '<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n';

export function modelsBody(models: readonly string[]): string {
  return JSON.stringify({
    data: models.map((id) => ({
      id,
      name: id,
      context_length: 131072,
      pricing: { prompt: '0', completion: '0' },
    })),
  });
}
