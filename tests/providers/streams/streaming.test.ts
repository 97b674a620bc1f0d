/**
 * Streaming over real HTTP against the simulator: failover before the first byte, failures after it,
 * client aborts, and the streaming fan-out.
 */
import OpenAI from 'openai';
import { keyId } from '../../../providers/keys/keys';
import { callsBy, hi, startStack, type Stack } from '../../helpers/stack';
import { chunks, contentOfChunks, postSse, waitFor } from '../../helpers/sse';

const A = 'sk-or-v1-stream-key-a-0001';
const B = 'sk-or-v1-stream-key-b-0002';
const KIMI = 'moonshotai/kimi-k2';
const simContent = (seq: number, model = KIMI) => `Hello from ${model} (sim #${seq})`;

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function kimiStack(simStream?: { chunks?: number; chunkDelayMs?: number }) {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' }, { keys: [{ key: A }, { key: B }], stream: simStream });
  return stack;
}

async function keyStatus(s: Stack, key: string) {
  return (await s.http.get('/api/key-status/kimi')).body.keys.find((k: { id: string }) => k.id === keyId(key));
}

describe('failover before the first byte', () => {
  test.each(['generic-429', 'free-per-min'] as const)('first key answers %s: one clean stream from the next key, nothing duplicated', async (type) => {
    const s = await kimiStack();
    s.sim.addRule({ match: { key: A }, type, times: 1 });
    const { data: stream, response } = await new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 })
      .chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true })
      .withResponse();
    let content = '';
    for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? '';
    expect(s.sim.calls.map((c) => [c.key, c.status])).toEqual([[A, 429], [B, 200]]);
    expect(content).toBe(simContent(2));
    expect(response.headers.get('x-orche-key-id')).toBe(keyId(B));
    expect(response.headers.get('x-orche-attempts')).toBe('2');
    expect((await keyStatus(s, A)).state).toBe('cooling');
    const line = s.logs.parsed().find((l) => l.message === 'request' && l.route === '/v1/chat/completions');
    expect(line).toMatchObject({ status: 200, provider: 'kimi', key_id: keyId(B), attempts: 2 });
  });

  test('a 429 that arrives as the first stream chunk rotates like a 429 answer', async () => {
    const s = await kimiStack();
    s.sim.addRule({ match: { key: A }, type: 'stream-error', afterChunks: 0, status: 429, message: 'Rate limit exceeded', times: 1 });
    const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
    expect(read.status).toBe(200);
    expect(contentOfChunks(read.events)).toBe(simContent(2));
    expect(chunks(read.events).some((c) => 'error' in c)).toBe(false);
    expect(read.text.match(/data: \[DONE\]/g)).toHaveLength(1);
    expect(callsBy(s.sim, A)).toHaveLength(1);
    expect((await keyStatus(s, A))).toMatchObject({ state: 'cooling', rate_limited: 1 });
  });
});

test('/api/chat with stream:true relays the upstream SSE as it arrives, keep-alive comment and usage included', async () => {
  const s = await kimiStack({ chunks: 5, chunkDelayMs: 150 });
  const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
  expect(read.status).toBe(200);
  expect(read.headers.get('content-type')).toBe('text/event-stream');
  expect(read.headers.get('cache-control')).toBe('no-cache');
  expect(read.headers.get('x-accel-buffering')).toBe('no');
  expect(read.headers.get('x-orche-provider')).toBe('kimi');
  expect(read.headers.get('x-orche-key-id')).toBe(keyId(A));
  expect(read.text.startsWith(': OPENROUTER PROCESSING\n\n')).toBe(true);
  expect(contentOfChunks(read.events)).toBe(simContent(1));
  // Passed through, not buffered: the first content chunk arrived long before the last event.
  const data = read.events.filter((e) => e.data !== undefined);
  expect(data[data.length - 1].at - data[0].at).toBeGreaterThanOrEqual(5 * 150 - 50);
  const usage = chunks(read.events).find((c) => (c.choices as unknown[]).length === 0)!.usage as { total_tokens: number };
  expect((await keyStatus(s, A)).tokens).toBe(usage.total_tokens);
});

test('upstream fails after two chunks: those chunks, an error chunk, [DONE]; the key\'s failure is counted', async () => {
  const s = await kimiStack();
  s.sim.addRule({ match: { key: A }, type: 'stream-error', afterChunks: 2, times: 1 });
  const read = await postSse(`${s.url}/v1/chat/completions`, { model: 'kimi', messages: hi, stream: true });
  expect(read.status).toBe(200);
  const data = read.events.filter((e) => e.data !== undefined).map((e) => e.data!);
  expect(data).toHaveLength(4);
  const [first, second] = chunks(read.events);
  const pieces = [first, second].map((c) => (c.choices as Array<{ delta: { content: string } }>)[0].delta.content);
  expect(simContent(1).startsWith(pieces.join(''))).toBe(true);
  expect(pieces.every((p) => p.length > 0)).toBe(true);
  // The error chunk names the stream it ends, as OpenRouter's own do (docs/design.md#streaming): the upstream's id, created and model.
  expect(JSON.parse(data[2])).toEqual({
    id: first.id,
    object: 'chat.completion.chunk',
    created: first.created,
    model: KIMI,
    error: { code: 502, message: 'Provider returned error', metadata: expect.objectContaining({ provider_name: 'SimProvider' }) },
    choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }],
  });
  expect(data[3]).toBe('[DONE]');
  expect(s.sim.calls).toHaveLength(1); // nothing is retried after the first byte
  expect(await keyStatus(s, A)).toMatchObject({ failures: 1, successes: 1, requests: 1 });
  expect(s.logs.lines.join('\n')).not.toContain(A);
});

test('a 429 chunk after the first byte cannot rotate, but still cools the key like a 429 answer', async () => {
  const s = await kimiStack();
  s.sim.addRule({ match: { key: A }, type: 'stream-error', afterChunks: 1, status: 429, message: 'Rate limit exceeded', times: 1 });
  const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
  expect(chunks(read.events).map((c) => (c.error as { code?: number } | undefined)?.code)).toEqual([undefined, 429]);
  expect(await keyStatus(s, A)).toMatchObject({ state: 'cooling', rate_limited: 1 });
  const next = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
  expect(next.headers.get('x-orche-key-id')).toBe(keyId(B));
});

test('the openai client sees a mid-stream failure as an APIError after the chunks before it', async () => {
  const s = await kimiStack();
  s.sim.addRule({ match: { key: A }, type: 'stream-error', afterChunks: 2, times: 1 });
  const stream = await new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 }).chat.completions.create({ model: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true });
  let received = 0;
  const err = await (async () => {
    for await (const chunk of stream) if (chunk.choices[0]?.delta?.content) received++;
  })().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(OpenAI.APIError);
  expect(received).toBe(2);
});

test('a client that aborts mid-stream: the upstream request is closed within a second', async () => {
  const s = await kimiStack({ chunks: 200, chunkDelayMs: 50 });
  const read = await postSse(`${s.url}/v1/chat/completions`, { model: 'kimi', messages: hi, stream: true }, (ev, all) => all.filter((e) => e.data).length >= 2);
  expect(read.events.filter((e) => e.data)).toHaveLength(2);
  const took = await waitFor(() => s.sim.calls[0]?.closedByClient === true, 1000);
  expect(took).toBeLessThan(1000);
  await waitFor(() => s.logs.parsed().some((l) => l.message === 'request'), 1000);
  expect(s.logs.parsed().find((l) => l.message === 'request')).toMatchObject({ status: 499, provider: 'kimi', key_id: keyId(A), attempts: 1 });
});

test('a client that leaves a JSON call while the upstream thinks: the upstream request is closed at once, logged as 499', async () => {
  const s = await kimiStack();
  s.sim.addRule({ type: 'delay', delayMs: 3000 });
  const client = new AbortController();
  const asked = fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'kimi', messages: hi }), signal: client.signal }).catch((e: unknown) => e);
  await waitFor(() => s.sim.calls.length === 1, 1000);
  client.abort();
  expect((await asked) as { name?: string }).toMatchObject({ name: 'AbortError' });
  expect(await waitFor(() => s.sim.calls[0]?.closedByClient === true, 1000)).toBeLessThan(1000);
  await waitFor(() => s.logs.parsed().some((l) => l.message === 'request'), 1000);
  // The line is written when the client leaves, before the call's end is known: no attempts yet.
  expect(s.logs.parsed().find((l) => l.message === 'request')).toMatchObject({ status: 499, provider: 'kimi' });
  expect(s.sim.calls).toHaveLength(1);
});

test('the abort reaches the upstream at once, not at its next chunk', async () => {
  const s = await kimiStack({ chunks: 4, chunkDelayMs: 1500 });
  await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true }, (ev) => ev.data !== undefined);
  expect(await waitFor(() => s.sim.calls[0]?.closedByClient === true, 1000)).toBeLessThan(1000);
});

describe('streaming fan-out', () => {
  const IDS = ['GLM45', 'GPTOSS', 'LLAMA3', 'KIMI', 'QWEN3', 'FALCON'];
  const keys = IDS.map((id) => `sk-or-v1-fanout-stream-${id.toLowerCase()}`);
  const env: Record<string, string> = {};
  IDS.forEach((id, i) => (env[`PROVIDER_${id}_API_KEY`] = keys[i]));
  const sixStack = async (simStream?: { chunks?: number; chunkDelayMs?: number }) => {
    stack = await startStack(env, { keys: keys.map((key) => ({ key })), stream: simStream });
    return stack;
  };
  /** The fields a fan-out event may carry. */
  type FanoutEvent = { event?: string; provider?: string; content?: string; model?: string; [field: string]: unknown };
  const parse = (ev: { event?: string; data?: string }): FanoutEvent => ({ event: ev.event, ...(JSON.parse(ev.data!) as Record<string, unknown>) });

  test('one slow provider (2 s between chunks): the fast ones are done before its first delta', async () => {
    const s = await sixStack({ chunks: 3, chunkDelayMs: 20 });
    s.sim.addRule({ match: { model: 'meta-llama/llama-4-maverick' }, type: 'delay', delayMs: 0, chunkDelayMs: 2000 });
    const read = await postSse(`${s.url}/api/chat/fanout`, { messages: hi, stream: true }, (ev) => ev.event === 'delta' && parse(ev).provider === 'llama3');
    expect(read.headers.get('content-type')).toBe('text/event-stream');
    const events = read.events.map((e) => ({ ...parse(e), at: e.at }));
    const slowFirst = events.findIndex((e) => e.event === 'delta' && e.provider === 'llama3');
    const done = events.filter((e) => e.event === 'done');
    expect(done.map((e) => e.provider).sort()).toEqual(['falcon', 'glm45', 'gptoss', 'kimi', 'qwen3']);
    for (const d of done) expect(events.indexOf(d)).toBeLessThan(slowFirst);
    expect(Math.max(...done.map((d) => d.at))).toBeLessThan(1000);
    expect(events[slowFirst].at).toBeGreaterThanOrEqual(1900);
  });

  test('timeout_ms ends a slow provider\'s stream with a fanout_timeout error and closes its upstream call', async () => {
    const s = await sixStack();
    s.sim.addRule({ match: { model: 'meta-llama/llama-4-maverick' }, type: 'delay', delayMs: 0, chunkDelayMs: 2000 });
    const started = Date.now();
    const read = await postSse(`${s.url}/api/chat/fanout`, { messages: hi, stream: true, timeout_ms: 500 });
    expect(Date.now() - started).toBeLessThan(1500);
    const events = read.events.map(parse);
    expect(events.filter((e) => e.event === 'error')).toEqual([{ event: 'error', provider: 'llama3', error: expect.objectContaining({ code: 504, type: 'fanout_timeout' }) }]);
    expect(events[events.length - 1]).toMatchObject({ event: 'end', succeeded: 5, failed: 1 });
    await waitFor(() => s.sim.calls.find((c) => c.model === 'meta-llama/llama-4-maverick')?.closedByClient === true, 1000);
  });

  test('delta, done, error and end events: each with its provider; failures before and after the first byte', async () => {
    const s = await sixStack();
    s.sim.addRule({ match: { model: KIMI }, type: 'status', status: 400, message: 'bad' });
    s.sim.addRule({ match: { model: 'qwen/qwen3-235b-a22b' }, type: 'stream-error', afterChunks: 2 });
    const read = await postSse(`${s.url}/api/chat/fanout`, { messages: hi, stream: true });
    const events = read.events.map(parse);
    expect(events[events.length - 1]).toMatchObject({ event: 'end', succeeded: 4, failed: 2, latency_ms: expect.any(Number) });
    expect(events.filter((e) => e.event === 'end')).toHaveLength(1);
    const errors = events.filter((e) => e.event === 'error');
    expect(errors.map((e) => e.provider).sort()).toEqual(['kimi', 'qwen3']);
    expect(errors.find((e) => e.provider === 'kimi')).toMatchObject({ error: { code: 400, type: 'upstream_rejected' } });
    expect(errors.find((e) => e.provider === 'qwen3')).toMatchObject({ error: { code: 502, type: 'upstream_stream_error' } });
    expect(events.filter((e) => e.event === 'delta' && e.provider === 'qwen3')).toHaveLength(2);
    for (const provider of ['glm45', 'gptoss', 'llama3', 'falcon']) {
      const text = events.filter((e) => e.event === 'delta' && e.provider === provider).map((e) => e.content).join('');
      const done = events.find((e) => e.event === 'done' && e.provider === provider)!;
      expect(text).toBe(`Hello from ${done.model} (sim #${s.sim.calls.find((c) => c.model === done.model)!.seq})`);
      expect(done).toMatchObject({ key_id: expect.any(String), attempts: 1, latency_ms: expect.any(Number), usage: { total_tokens: expect.any(Number) } });
    }
  });
});
