/**
 * The OpenAI-compatible API, driven by the official `openai` client against a real orche and the simulator.
 */
import OpenAI from 'openai';
import { keyId } from '../../../providers/keys/keys';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-openai-key-a-0001';
const B = 'sk-or-v1-openai-key-b-0002';
const KIMI = 'moonshotai/kimi-k2';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function kimiStack(env: Record<string, string> = {}) {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover', ...env }, { keys: [{ key: A }, { key: B }] });
  return stack;
}

function client(s: Stack, apiKey = 'x') {
  return new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });
}

test('a plain create: the upstream chat.completion comes back, other fields go upstream untouched, model becomes the slug', async () => {
  const s = await kimiStack();
  const tools = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
  const { data, response } = await client(s)
    .chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }], tools, seed: 7, response_format: { type: 'json_object' } })
    .withResponse();
  expect(data.object).toBe('chat.completion');
  expect(data.model).toBe(KIMI);
  expect(data.choices[0].message.content).toBe(`Hello from ${KIMI} (sim #1)`);
  expect(data.usage?.total_tokens).toBeGreaterThan(0);
  expect(response.headers.get('x-orche-provider')).toBe('kimi');
  expect(response.headers.get('x-orche-key-id')).toBe(keyId(A));
  expect(response.headers.get('x-orche-attempts')).toBe('1');
  expect(s.sim.calls[0].body).toEqual({ model: KIMI, messages: [{ role: 'user', content: 'hi' }], tools, seed: 7, response_format: { type: 'json_object' } });
});

test('model may be the upper-case ID or the configured slug', async () => {
  const s = await kimiStack();
  for (const model of ['KIMI', KIMI]) {
    const r = await client(s).chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
    expect(r.model).toBe(KIMI);
  }
});

test('a streaming create read with for await: the chunks add up to the simulator\'s answer, usage in the last', async () => {
  const s = await kimiStack();
  const stream = await client(s).chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true });
  let content = '';
  let usage: unknown;
  for await (const chunk of stream) {
    content += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  expect(content).toBe(`Hello from ${KIMI} (sim #1)`);
  expect(usage).toMatchObject({ total_tokens: expect.any(Number) });
  expect(s.sim.calls[0].body).toMatchObject({ model: KIMI, stream: true });
});

test('a stream with stream_options.include_usage: the option goes upstream, one last chunk with empty choices carries the usage', async () => {
  const s = await kimiStack();
  const stream = await client(s).chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const withUsage = chunks.filter((c) => c.usage);
  expect(withUsage).toHaveLength(1);
  expect(withUsage[0].choices).toEqual([]);
  expect(withUsage[0].usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), total_tokens: expect.any(Number), cost: expect.any(Number) });
  expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(`Hello from ${KIMI} (sim #1)`);
  expect(s.sim.calls[0].body).toMatchObject({ model: KIMI, stream: true, stream_options: { include_usage: true } });
});

test('models.retrieve(): a provider ID or its slug in OpenAI\'s model shape; an unknown one is a NotFoundError', async () => {
  const s = await kimiStack();
  expect(await client(s).models.retrieve('kimi')).toMatchObject({ id: 'kimi', object: 'model', owned_by: 'orche', model: KIMI, configured: true });
  expect(await client(s).models.retrieve(KIMI)).toMatchObject({ id: KIMI, object: 'model', model: KIMI });
  const unknown = await client(s).models.retrieve('gpt-4o').catch((e: unknown) => e);
  expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
  expect((unknown as InstanceType<typeof OpenAI.NotFoundError>).error).toMatchObject({ code: 404, type: 'model_not_found' });
});

test('models.list(): one entry per provider in OpenAI\'s list shape, with the upstream slug and name', async () => {
  const s = await kimiStack();
  const page = await client(s).models.list();
  expect(page.data.map((m) => m.id)).toEqual(['glm45', 'gptoss', 'llama3', 'kimi', 'qwen3', 'falcon']);
  const kimi = page.data.find((m) => m.id === 'kimi')!;
  expect(kimi).toMatchObject({ object: 'model', owned_by: 'orche', model: KIMI, name: 'MoonshotAI Kimi', configured: true });
  expect(typeof kimi.created).toBe('number');
});

test('every key cooling with ORCHE_MAX_WAIT_MS=0: the client gets its RateLimitError, status 429, for a create and a stream', async () => {
  const s = await kimiStack({ ORCHE_MAX_WAIT_MS: '0' });
  for (const key of [A, B]) s.sim.addRule({ match: { key }, type: 'generic-429', retryAfterSeconds: 30, times: 1 });
  const err = await client(s).chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.RateLimitError);
  expect((err as InstanceType<typeof OpenAI.RateLimitError>).status).toBe(429);
  expect((err as InstanceType<typeof OpenAI.RateLimitError>).error).toMatchObject({ code: 429, type: 'all_keys_rate_limited' });
  const streamErr = await client(s).chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true }).catch((e: unknown) => e);
  expect(streamErr).toBeInstanceOf(OpenAI.RateLimitError);
  expect(s.sim.calls).toHaveLength(2); // the stream was refused by orche itself: both keys were cooling
});

test('bad bodies are 400s the client maps to BadRequestError; an unknown model is a 404', async () => {
  const s = await kimiStack();
  const noMessages = await client(s).chat.completions.create({ model: 'kimi', messages: [] }).catch((e: unknown) => e);
  expect(noMessages).toBeInstanceOf(OpenAI.BadRequestError);
  const res = await s.http.post('/v1/chat/completions').send({ messages: hi });
  expect(res.status).toBe(400);
  expect(res.body.error).toMatchObject({ code: 400, type: 'invalid_request' });
  const unknown = await client(s).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
  expect(s.sim.calls).toHaveLength(0);
});

test('with ORCHE_CLIENT_TOKENS the Bearer token is checked on /v1 and /api chat routes', async () => {
  const s = await kimiStack({ ORCHE_CLIENT_TOKENS: 'client-token-one-1,client-token-two-2' });
  const wrong = await client(s, 'nope').chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  expect(wrong).toBeInstanceOf(OpenAI.PermissionDeniedError);
  const ok = await client(s, 'client-token-two-2').chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }] });
  expect(ok.choices[0].message.content).toMatch(/Hello from/);
  expect((await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(401);
  expect((await s.http.post('/api/chat/fanout').send({ messages: hi })).status).toBe(401);
  expect((await s.http.post('/api/chat').set('Authorization', 'Bearer client-token-one-1').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  expect(s.sim.calls).toHaveLength(2);
});
