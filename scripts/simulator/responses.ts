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

/**
 * The simulator's prices in USD per token, of the order OpenRouter lists for these models (not
 * quotes of them); `:free` variants and models not listed cost nothing. GET /models shows them.
 */
const PRICES: Record<string, { prompt: number; completion: number }> = {
  'z-ai/glm-4.5': { prompt: 0.0000004, completion: 0.0000016 },
  'openai/gpt-oss-120b': { prompt: 0.00000005, completion: 0.00000025 },
  'meta-llama/llama-4-maverick': { prompt: 0.00000015, completion: 0.0000006 },
  'moonshotai/kimi-k2': { prompt: 0.0000005, completion: 0.0000024 },
  'qwen/qwen3-235b-a22b': { prompt: 0.00000013, completion: 0.0000006 },
  'tngtech/deepseek-r1t2-chimera': { prompt: 0.0000003, completion: 0.0000012 },
};

export function priceOf(model: string): { prompt: number; completion: number } {
  return PRICES[model] ?? { prompt: 0, completion: 0 };
}

/** Dollars kept to 1e-12, as OpenRouter's own figures are short decimals. */
function dollars(x: number): number {
  return Math.round(x * 1e12) / 1e12;
}

/**
 * Usage as OpenRouter sends it, in the last chunk of a stream and in a JSON answer: tokens, `cost`
 * (in USD; `upstream_inference_cost` repeats it when the key is not BYOK) and `cost_details`. Shape
 * of the usage OpenRouter sent at the end of a z-ai/glm-5.3-flash stream on 9 October 2026
 * (underpass-ai/AXLR, adapters/openrouter/usage_cost_test.go, `relaceUsage`): `{"prompt_tokens",
 * "completion_tokens","total_tokens","cost","is_byok":false,"prompt_tokens_details":{…},
 * "cost_details":{"upstream_inference_cost","upstream_inference_prompt_cost",
 * "upstream_inference_completions_cost"},"completion_tokens_details":{"reasoning_tokens",…}}`.
 * Reasoning tokens are output tokens, counted in completion_tokens and billed as such.
 */
export function usage(model: string, prompt: number, completion: number, reasoningTokens = 0) {
  const price = priceOf(model);
  const promptCost = dollars(prompt * price.prompt);
  const completionCost = dollars(completion * price.completion);
  const cost = dollars(promptCost + completionCost);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    cost,
    is_byok: false,
    prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0, audio_tokens: 0 },
    cost_details: { upstream_inference_cost: cost, upstream_inference_prompt_cost: promptCost, upstream_inference_completions_cost: completionCost },
    completion_tokens_details: { reasoning_tokens: reasoningTokens, image_tokens: 0 },
  };
}

/**
 * The four default models that reason (GLM-4.5, GPT-OSS-120B, Qwen3-235B, DeepSeek R1T2 Chimera),
 * and their `:free` variants: on OpenRouter they send their reasoning before any content.
 */
const REASONING_MODELS: ReadonlySet<string> = new Set(['z-ai/glm-4.5', 'openai/gpt-oss-120b', 'qwen/qwen3-235b-a22b', 'tngtech/deepseek-r1t2-chimera']);

export function isReasoningModel(model: string): boolean {
  return REASONING_MODELS.has(model.endsWith(':free') ? model.slice(0, -5) : model);
}

/** One tool call of an answer: OpenAI's shape, arguments as a JSON string. */
export interface SimToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** What a completion says: its content, and (for reasoning models, tools) reasoning and tool calls. */
export interface Answer {
  content: string;
  reasoning?: string;
  toolCalls?: SimToolCall[];
}

function finishReasonOf(answer: Answer): string {
  return answer.toolCalls && answer.toolCalls.length > 0 ? 'tool_calls' : 'stop';
}

/** `reasoning_details` as OpenRouter sends them for these models: one `reasoning.text` entry, format unknown. */
function reasoningDetails(text: string) {
  return [{ type: 'reasoning.text', text, format: 'unknown', index: 0 }];
}

export function usageOf(model: string, prompt: number, answer: Answer) {
  const reasoning = answer.reasoning === undefined ? 0 : completionTokens(answer.reasoning);
  const tools = (answer.toolCalls ?? []).reduce((n, t) => n + completionTokens(t.name + t.arguments), 0);
  return usage(model, prompt, completionTokens(answer.content) + reasoning + tools, reasoning);
}

/**
 * A JSON answer. A reasoning model's message carries `reasoning` (OpenRouter's field:
 * `response.json()['choices'][0]['message']['reasoning']`, Aider-AI/aider issue #3086, 2025-03-09,
 * after OpenRouter's reasoning-tokens docs) and `reasoning_details`, one `reasoning.text` entry
 * (`{"type":"reasoning.text","text":…,"format":"unknown","index":0}`, the form of the streamed
 * deltas below); tool calls are `message.tool_calls` with finish_reason "tool_calls".
 */
export function successBody(seq: number, model: string, created: number, answer: Answer, prompt: number): string {
  const message: Record<string, unknown> = { role: 'assistant', content: answer.content };
  if (answer.reasoning !== undefined) {
    message.reasoning = answer.reasoning;
    message.reasoning_details = reasoningDetails(answer.reasoning);
  }
  if (answer.toolCalls && answer.toolCalls.length > 0) {
    message.tool_calls = answer.toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
  }
  const finish = finishReasonOf(answer);
  return JSON.stringify({
    id: `gen-${seq}`,
    object: 'chat.completion',
    created,
    model,
    provider: PROVIDER,
    choices: [{ index: 0, finish_reason: finish, native_finish_reason: finish, message }],
    usage: usageOf(model, prompt, answer),
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

/** A content delta; a reasoning model's carry `reasoning: null, reasoning_details: []` beside it, as real ones do. */
export function contentEvent(head: ChunkHead, piece: string, reasoningModel = false): string {
  const delta = reasoningModel ? { role: 'assistant', content: piece, reasoning: null, reasoning_details: [] } : { role: 'assistant', content: piece };
  const choice = reasoningModel ? { index: 0, delta, finish_reason: null, native_finish_reason: null } : { index: 0, delta, finish_reason: null };
  return event({ ...head, choices: [choice] });
}

/**
 * A reasoning delta, as OpenRouter streams a reasoning model's thinking before its content:
 * `delta.reasoning` and the same text in `delta.reasoning_details`, with empty content. Byte shape of
 * the z-ai/glm-4.5 stream gen-1759420128-LjBsuYJf6lKeyy66nQs9 (DeepInfra, created 2025-10-02; kept
 * verbatim in a public OpenRouter client's test server, a code-corpus file whose repository the
 * corpus does not name; the same chunks are in tests/providers/streams/streamFanout.test.ts):
 * `"delta":{"role":"assistant","content":"","reasoning":"Okay","reasoning_details":[{"type":
 * "reasoning.text","text":"Okay","format":"unknown","index":0}]},"finish_reason":null,
 * "native_finish_reason":null`; the same fields in huggingface/responses.js PR #19 (2025-07-31,
 * deepseek/deepseek-r1) and karthink/gptel issue #1027 (z-ai/glm-4.5v).
 */
export function reasoningEvent(head: ChunkHead, piece: string): string {
  return event({
    ...head,
    choices: [{ index: 0, delta: { role: 'assistant', content: '', reasoning: piece, reasoning_details: reasoningDetails(piece) }, finish_reason: null, native_finish_reason: null }],
  });
}

/**
 * A tool call's deltas, as OpenRouter streams them (deepseek/deepseek-v4-pro-0813 via StreamLake,
 * stream gen-1790156376-H3hQlnMSJkVWkGJ4ROxR, 2026-09-23, "first SSE payloads verbatim" of a
 * published probe of OpenRouter's reasoning and tool calling; a code-corpus file whose repository
 * the corpus does not name): the first names it
 * (`{"index":0,"id":"call_…","type":"function","function":{"name":"get_weather","arguments":""}}`),
 * the next carry pieces of the arguments (`{"index":0,"function":{"arguments":"{\"city\": \""}}`),
 * in deltas `{"content":null,"role":"assistant","tool_calls":[…]}`.
 */
export function toolCallEvents(head: ChunkHead, index: number, call: SimToolCall, pieces: number): string[] {
  const delta = (tc: Record<string, unknown>) => event({ ...head, choices: [{ index: 0, delta: { content: null, role: 'assistant', tool_calls: [tc] }, finish_reason: null, native_finish_reason: null }] });
  const out = [delta({ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } })];
  for (const piece of splitContent(call.arguments, pieces)) if (piece !== '') out.push(delta({ index, function: { arguments: piece } }));
  return out;
}

/** Real OpenRouter streams open with an empty assistant delta before any content. */
export function roleEvent(head: ChunkHead): string {
  return event({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, native_finish_reason: null }] });
}

export function finishEvent(head: ChunkHead, answer?: Answer): string {
  const finish = answer ? finishReasonOf(answer) : 'stop';
  return event({
    ...head,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: finish, native_finish_reason: finish }],
  });
}

/** Usage arrives once, in a last chunk whose `choices` is empty, with its cost. */
export function usageEvent(head: ChunkHead, model: string, prompt: number, answer: Answer): string {
  return event({ ...head, choices: [], usage: usageOf(model, prompt, answer) });
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
      pricing: { prompt: String(priceOf(id).prompt), completion: String(priceOf(id).completion) },
    })),
  });
}
