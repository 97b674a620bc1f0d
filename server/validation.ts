import { z } from 'zod';
import { ValidationError } from '../providers/errors';

export const LIMITS = {
  messages: 1000,
  messageChars: 512 * 1024,
  fanoutProviders: 32,
};

const content = z.union([z.string().max(LIMITS.messageChars, `at most ${LIMITS.messageChars} characters`), z.array(z.unknown()).max(1000)], {
  error: 'a string or an array of content parts',
});

const message = z.looseObject({
  role: z.string({ error: 'a string' }).min(1, 'a non-empty string').max(64),
  content,
});

const messages = z
  .array(message, { error: 'an array of {role, content} messages' })
  .min(1, 'at least one message')
  .max(LIMITS.messages, `at most ${LIMITS.messages} messages`);

const sampling = {
  stream: z.boolean({ error: 'true or false' }).optional(),
  temperature: z.number({ error: 'a number from 0 to 2' }).min(0).max(2).optional(),
  max_tokens: z.number({ error: 'a whole number from 1 to 1000000' }).int().min(1).max(1_000_000).optional(),
  top_p: z.number({ error: 'a number from 0 to 1' }).min(0).max(1).optional(),
  stop: z.union([z.string().max(1000), z.array(z.string().max(1000)).max(4)], { error: 'a string or up to 4 strings' }).optional(),
  /** OpenAI's end-user name: fair sharing and ORCHE_USER_RPM/RPD per end user (server/endUsers.ts). */
  user: z.string({ error: 'a string naming the end user' }).min(1).max(256).optional(),
};

export const chatSchema = z.strictObject({
  provider: z.string({ error: 'a provider ID such as kimi' }).min(1).max(64),
  messages,
  ...sampling,
});

export const fanoutSchema = z.strictObject({
  messages,
  providers: z
    .array(z.string().min(1).max(64), { error: 'an array of provider IDs' })
    .min(1, 'at least one provider')
    .max(LIMITS.fanoutProviders, `at most ${LIMITS.fanoutProviders} providers`)
    .optional(),
  timeout_ms: z.number({ error: 'milliseconds from 1 to 600000' }).int().min(1).max(600_000).optional(),
  ...sampling,
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

/** The sampling fields that go upstream with the messages. */
export function upstreamBody(input: { messages: unknown[]; temperature?: number; max_tokens?: number; top_p?: number; stop?: string | string[]; user?: string }): Record<string, unknown> {
  const body: Record<string, unknown> = { messages: input.messages };
  if (input.temperature !== undefined) body.temperature = input.temperature;
  if (input.max_tokens !== undefined) body.max_tokens = input.max_tokens;
  if (input.top_p !== undefined) body.top_p = input.top_p;
  if (input.stop !== undefined) body.stop = input.stop;
  if (input.user !== undefined) body.user = input.user;
  return body;
}
