/**
 * OpenRouter's own TypeScript SDK (`@openrouter/sdk`, pinned), unmodified, against a real orche on
 * loopback and the simulator: `serverURL` is orche's `/v1`, `model` a provider ID. Its answers and
 * stream chunks are checked against the SDK's schemas, so a field orche drops shows up here.
 */
import { OpenRouter } from '@openrouter/sdk';
import type { ChatResult, ChatStreamChunk } from '@openrouter/sdk/models';
import * as errors from '@openrouter/sdk/models/errors';
import { ZodError } from 'zod';
import { startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-orsdk-key-a-0001';
const B = 'sk-or-v1-orsdk-key-b-0002';
const KIMI = 'moonshotai/kimi-k2';
const hi = [{ role: 'user' as const, content: 'hi' }];

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function kimiStack(env: Record<string, string> = {}) {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover', ...env }, { keys: [{ key: A }, { key: B }] });
  return stack;
}

// chat.send's declared result is the union of both forms, whatever `stream` says: narrowed here.
const json = (r: unknown) => r as ChatResult;
const chunks = (r: unknown) => r as AsyncIterable<ChatStreamChunk>;

/** The SDK's own retries off: each test is about one answer. */
function sdk(s: Stack): OpenRouter {
  return new OpenRouter({ apiKey: 'x', serverURL: `${s.url}/v1`, retryConfig: { strategy: 'none' } });
}

test('chat.send, not streaming: the answer passes the SDK\'s schema, with content and usage', async () => {
  const s = await kimiStack();
  const r = json(await sdk(s).chat.send({ chatRequest: { model: 'kimi', messages: hi, stream: false } }));
  expect(r.model).toBe(KIMI);
  expect(r.choices[0].message.content).toBe(`Hello from ${KIMI} (sim #1)`);
  expect(r.usage?.totalTokens).toBeGreaterThan(0);
  expect(s.sim.calls[0].body).toMatchObject({ model: KIMI, messages: hi });
});

test('chat.send, streaming: every chunk passes the SDK\'s schema; the content adds up, usage in the last', async () => {
  const s = await kimiStack();
  const stream = chunks(await sdk(s).chat.send({ chatRequest: { model: 'kimi', messages: hi, stream: true, streamOptions: { includeUsage: true } } }));
  let content = '';
  let usage: unknown;
  for await (const chunk of stream) {
    content += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  expect(content).toBe(`Hello from ${KIMI} (sim #1)`);
  expect(usage).toMatchObject({ totalTokens: expect.any(Number) });
  expect(s.sim.calls[0].body).toMatchObject({ model: KIMI, stream: true, stream_options: { include_usage: true } });
});

test('a stream that fails after its first bytes: the SDK reads orche\'s error chunk as a chunk with `error`, no ZodError', async () => {
  const s = await kimiStack();
  s.sim.addRule({ match: { key: A }, type: 'stream-error', afterChunks: 2, status: 502, times: 1 });
  const stream = chunks(await sdk(s).chat.send({ chatRequest: { model: 'kimi', messages: hi, stream: true } }));
  const seen: Array<{ error?: ChatStreamChunk['error']; finish?: unknown }> = [];
  let thrown: unknown;
  try {
    for await (const chunk of stream) seen.push({ error: chunk.error, finish: chunk.choices[0]?.finishReason });
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeUndefined();
  const last = seen[seen.length - 1];
  // The SDK's schema wants metadata.error_type whenever metadata is there: OpenRouter's canonical type for a 502.
  expect(last.error).toMatchObject({ code: 502, message: expect.any(String), metadata: { errorType: 'provider_unavailable' } });
  expect(last.finish).toBe('error');
  expect(seen.slice(0, -1).every((c) => c.error === undefined)).toBe(true);
});

test('every key cooling with ORCHE_MAX_WAIT_MS=0: a 429 is the SDK\'s TooManyRequestsResponseError', async () => {
  const s = await kimiStack({ ORCHE_MAX_WAIT_MS: '0' });
  for (const key of [A, B]) s.sim.addRule({ match: { key }, type: 'generic-429', retryAfterSeconds: 30, times: 1 });
  const err = await sdk(s).chat.send({ chatRequest: { model: 'kimi', messages: hi, stream: false } }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(errors.TooManyRequestsResponseError);
  expect(err).not.toBeInstanceOf(ZodError);
  const e = err as errors.TooManyRequestsResponseError;
  expect(e.statusCode).toBe(429);
  expect(e.error).toMatchObject({ code: 429, message: expect.any(String) });
  // The stream is refused before its first byte, so it is the same typed error.
  const streamErr = await sdk(s).chat.send({ chatRequest: { model: 'kimi', messages: hi, stream: true } }).catch((x: unknown) => x);
  expect(streamErr).toBeInstanceOf(errors.TooManyRequestsResponseError);
});
