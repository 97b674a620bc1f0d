import { z } from 'zod';
import { ValidationError } from '../../providers/errors';

export const LIMITS = {
  messages: 1000,
  messageChars: 512 * 1024,
  fanoutProviders: 32,
};

const content = z.union([z.string().max(LIMITS.messageChars, `at most ${LIMITS.messageChars} characters`), z.array(z.unknown()).max(1000)], {
  error: 'a string or an array of content parts',
});

/**
 * A message: a role, and content as text or parts. An assistant turn that called tools may carry
 * `content: null` (or none) beside its `tool_calls`, as OpenAI's and OpenRouter's APIs allow, so a
 * frontend can send a tool conversation back.
 */
const message = z
  .looseObject({
    role: z.string({ error: 'a string' }).min(1, 'a non-empty string').max(64),
    content: content.nullish(),
    tool_calls: z.array(z.unknown(), { error: 'an array of tool calls' }).max(1000).optional(),
  })
  .refine((m) => (m.content !== undefined && m.content !== null) || (m.tool_calls !== undefined && m.tool_calls.length > 0), {
    message: 'content: a string or an array of content parts (null only beside tool_calls)',
    path: ['content'],
  });

const messages = z
  .array(message, { error: 'an array of {role, content} messages' })
  .min(1, 'at least one message')
  .max(LIMITS.messages, `at most ${LIMITS.messages} messages`);

/**
 * The fields orche itself reads. Everything else in a chat body is OpenRouter's (tools, tool_choice,
 * reasoning, response_format, temperature, max_tokens, stop, seed, usage, …) and goes upstream as
 * sent, as /v1 does (docs/design.md#what-the-frontends-get): OpenRouter ignores what a model does not support, and answers 400
 * itself for what it refuses, which orche relays as the request's error.
 */
const ownFields = {
  stream: z.boolean({ error: 'true or false' }).optional(),
  /** OpenAI's end-user name: fair sharing and ORCHE_USER_RPM/RPD per end user (server/limits/endUsers.ts). Sent upstream too. */
  user: z.string({ error: 'a string naming the end user' }).min(1).max(256).optional(),
};

export const chatSchema = z.looseObject({
  provider: z.string({ error: 'a provider ID such as kimi' }).min(1).max(64),
  messages,
  ...ownFields,
});

export const fanoutSchema = z.looseObject({
  messages,
  providers: z
    .array(z.string().min(1).max(64), { error: 'an array of provider IDs' })
    .min(1, 'at least one provider')
    .max(LIMITS.fanoutProviders, `at most ${LIMITS.fanoutProviders} providers`)
    .optional(),
  timeout_ms: z.number({ error: 'milliseconds from 1 to 600000' }).int().min(1).max(600_000).optional(),
  ...ownFields,
});

/**
 * The OpenAI-compatible body: checked only as far as routing needs (`model`, `messages`, `stream`);
 * every other field goes upstream untouched, as OpenRouter takes and ignores what it does not know.
 */
export const openaiChatSchema = z.looseObject({
  model: z.string({ error: 'a provider ID such as kimi, or a configured model slug' }).min(1).max(256),
  messages: z.array(z.unknown(), { error: 'a non-empty array of messages' }).min(1, 'at least one message').max(LIMITS.messages, `at most ${LIMITS.messages} messages`),
  stream: z.boolean({ error: 'true or false' }).optional(),
});

/**
 * openaiChatSchema's verdict on the hot path without zod's copy of the body and of every message
 * (~40 µs a request under load, issue 21): a body it would accept is checked by hand and returned
 * as it is; anything else goes to zod, so a refusal names its fields exactly as before.
 */
export function validateOpenAiChat(body: unknown): z.output<typeof openaiChatSchema> {
  const b = body as { model?: unknown; messages?: unknown; stream?: unknown } | null;
  const fine =
    typeof b === 'object' &&
    b !== null &&
    !Array.isArray(b) &&
    typeof b.model === 'string' &&
    b.model.length >= 1 &&
    b.model.length <= 256 &&
    Array.isArray(b.messages) &&
    b.messages.length >= 1 &&
    b.messages.length <= LIMITS.messages &&
    (b.stream === undefined || typeof b.stream === 'boolean');
  return fine ? (b as z.output<typeof openaiChatSchema>) : validate(openaiChatSchema, body);
}

/** Parses a request body or throws a 400 with `details` naming each bad field. */
export function validate<T extends z.ZodTypeAny>(schema: T, body: unknown): z.output<T> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ValidationError('The request body must be a JSON object (Content-Type: application/json)', [{ path: '', message: 'a JSON object' }]);
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const details = result.error.issues.slice(0, 20).map((i) => ({
    path: i.path.join('.'),
    message: i.code === 'unrecognized_keys' ? `unknown field(s): ${(i as { keys: string[] }).keys.join(', ')}` : i.message,
  }));
  throw new ValidationError(`Invalid request: ${details.map((d) => `${d.path || 'body'}: ${d.message}`).join('; ')}`, details);
}

/**
 * The body that goes upstream: the client's, as sent, without the fields that are orche's own
 * (`consumed`: on /api/chat `provider` names orche's provider, on the fan-out `providers` and
 * `timeout_ms` are the fan-out's). `stream` is set by the attempt itself. Routing fields never reach
 * here: server/http/clientRouting.ts refuses them, or takes them out when the operator allows them.
 */
export function upstreamBody(body: Record<string, unknown>, consumed: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(body)) {
    if (consumed.includes(field) || field === 'stream') continue;
    out[field] = value;
  }
  return out;
}
