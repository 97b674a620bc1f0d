/**
 * The frontends get everything the model sends (docs/design.md#what-the-frontends-get), over real HTTP against the
 * simulator: OpenRouter's request fields pass through /api/chat and the fan-out, reasoning and tool
 * calls come back from both, failed streams end with an error chunk naming the stream, and
 * GET /v1/models/:id answers one model.
 */
import OpenAI from 'openai';
import { hi, startStack, type Stack } from '../../helpers/stack';
import { SseParser } from '../../../providers/streams/sse';
import { chunks, postSse } from '../../helpers/sse';

const IDS = ['GLM45', 'GPTOSS', 'LLAMA3', 'KIMI', 'QWEN3', 'FALCON'];
const KEYS = IDS.map((id) => `sk-or-v1-frontends-${id.toLowerCase()}-key`);
const ENV: Record<string, string> = Object.fromEntries(IDS.map((id, i) => [`PROVIDER_${id}_API_KEY`, KEYS[i]]));
const KIMI = 'moonshotai/kimi-k2';
const GLM = 'z-ai/glm-4.5';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function sixStack(simStream?: { chunks?: number; chunkDelayMs?: number; roleDelta?: boolean }): Promise<Stack> {
  stack = await startStack(ENV, { keys: KEYS.map((key) => ({ key })), stream: simStream });
  return stack;
}

const weather = [{ type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];

describe('OpenRouter\'s generation fields pass through /api/chat and the fan-out (docs/design.md#what-the-frontends-get)', () => {
  test('/api/chat: tools, tool_choice, reasoning, response_format, temperature, max_tokens, stop, seed, usage and an unknown field reach the upstream as sent', async () => {
    const s = await sixStack();
    const fields = {
      tools: weather,
      tool_choice: 'auto',
      reasoning: { exclude: true },
      response_format: { type: 'json_object' },
      temperature: 3,
      max_tokens: 0,
      stop: ['a', 'b', 'c', 'd', 'e'],
      seed: 7,
      usage: { include: true },
      top_k: 40,
      user: 'alice',
    };
    const res = await s.http.post('/api/chat').send({ provider: 'glm45', messages: hi, ...fields });
    expect(res.status).toBe(200);
    // orche's own `provider` stays here; everything else is the upstream's, untouched (OpenRouter judges its own ranges).
    expect(s.sim.calls[0].body).toEqual({ model: GLM, messages: hi, ...fields });
  });

  test('the fan-out: the same fields go to every leg; providers and timeout_ms stay orche\'s', async () => {
    const s = await sixStack();
    const res = await s.http.post('/api/chat/fanout').send({ providers: ['kimi', 'glm45'], timeout_ms: 5000, messages: hi, tools: weather, reasoning: { effort: 'high' }, seed: 3 });
    expect(res.status).toBe(200);
    expect(res.body.succeeded).toBe(2);
    const bodies = s.sim.calls.map((c) => c.body as Record<string, unknown>).sort((a, b) => String(a.model).localeCompare(String(b.model)));
    expect(bodies).toEqual([
      { model: KIMI, messages: hi, tools: weather, reasoning: { effort: 'high' }, seed: 3 },
      { model: GLM, messages: hi, tools: weather, reasoning: { effort: 'high' }, seed: 3 },
    ]);
  });

  test('a tool conversation comes back: an assistant turn with content null beside its tool_calls, then the tool\'s answer', async () => {
    const s = await sixStack();
    const messages = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp_c":18}' },
    ];
    const res = await s.http.post('/api/chat').send({ provider: 'kimi', messages, tools: weather });
    expect(res.status).toBe(200);
    expect((s.sim.calls[0].body as { messages: unknown }).messages).toEqual(messages);
  });

  test.each([
    ['/api/chat', { provider: 'kimi', messages: hi, stream: 'yes' }, 'stream'],
    ['/api/chat', { provider: 'kimi', messages: hi, user: ['a'] }, 'user'],
    ['/api/chat/fanout', { messages: hi, providers: 'kimi' }, 'providers'],
    ['/api/chat/fanout', { messages: hi, timeout_ms: -1 }, 'timeout_ms'],
    ['/api/chat/fanout', { messages: 'hi' }, 'messages'],
  ])('%s %j: a field orche reads with a bad type is a 400 naming %s', async (path, body, field) => {
    const s = await sixStack();
    const res = await s.http.post(path).send(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 400, type: 'invalid_request' });
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(field);
    expect(s.sim.calls).toHaveLength(0);
  });

  test.each([
    ['/api/chat', { provider: 'kimi', messages: hi, models: ['openai/gpt-5'] }, 'models'],
    ['/api/chat', { provider: 'kimi', messages: hi, route: 'fallback' }, 'route'],
    ['/api/chat/fanout', { messages: hi, plugins: [{ id: 'web' }] }, 'plugins'],
    ['/api/chat/fanout', { messages: hi, provider: { order: ['DeepInfra'] } }, 'provider'],
  ])('%s with the routing field in %j is refused, never passed upstream', async (path, body, field) => {
    const s = await sixStack();
    const res = await s.http.post(path).send(body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 400, type: 'routing_field_not_allowed' });
    expect(res.body.error.message).toContain(`"${field}"`);
    expect(s.sim.calls).toHaveLength(0);
  });
});

describe('a stream that fails after its first byte ends with an error chunk naming the stream (docs/design.md#what-the-frontends-get)', () => {
  test('/api/chat and /v1: the error chunk carries the upstream stream\'s id, object, created and model', async () => {
    const s = await sixStack();
    for (const [path, body] of [
      ['/api/chat', { provider: 'kimi', messages: hi, stream: true }],
      ['/v1/chat/completions', { model: 'kimi', messages: hi, stream: true }],
    ] as const) {
      s.sim.addRule({ match: { model: KIMI }, type: 'stream-error', afterChunks: 1, times: 1 });
      const read = await postSse(`${s.url}${path}`, body);
      const [first, last] = [chunks(read.events)[0], chunks(read.events).at(-1)!];
      expect(first.id).toMatch(/^gen-/);
      expect(last).toMatchObject({ id: first.id, object: 'chat.completion.chunk', created: first.created, model: KIMI, error: { code: 502 } });
      expect(read.text.endsWith('data: [DONE]\n\n')).toBe(true);
    }
  });
});

describe('GET /v1/models/:id (docs/design.md#what-the-frontends-get)', () => {
  test('a provider ID (any case) or a configured slug, with its slash plain or encoded, answers one model in OpenAI\'s shape', async () => {
    const s = await sixStack();
    for (const [path, id] of [['/v1/models/glm45', 'glm45'], ['/v1/models/GLM45', 'glm45'], ['/v1/models/z-ai/glm-4.5', GLM], ['/v1/models/z-ai%2Fglm-4.5', GLM]]) {
      const res = await s.http.get(path);
      expect([path, res.status]).toEqual([path, 200]);
      expect(res.body).toEqual({ id, object: 'model', created: expect.any(Number), owned_by: 'orche', name: 'GLM-4.5', provider: 'glm45', model: GLM, configured: true });
    }
    const retrieved = await new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 }).models.retrieve('z-ai/glm-4.5');
    expect(retrieved).toMatchObject({ id: GLM, object: 'model', owned_by: 'orche' });
  });

  test('an unknown model is a 404 in the error shape; another method is a 405', async () => {
    const s = await sixStack();
    for (const path of ['/v1/models/gpt-4o', '/v1/models/z-ai/glm-9', '/v1/models/z-ai/glm-4.5/extra']) {
      const res = await s.http.get(path);
      expect([path, res.status]).toEqual([path, 404]);
      expect(res.body.error).toMatchObject({ code: 404, type: 'model_not_found' });
    }
    const post = await s.http.post('/v1/models/kimi').send({});
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });
});

/** Reads a fan-out stream event by event; `onEvent` may act (and wait) before the next is read. */
async function readFanout(url: string, body: unknown, onEvent: (ev: { event?: string; data: Record<string, unknown> }) => Promise<void> | void = () => undefined) {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  const events: Array<{ event?: string; data: Record<string, unknown> }> = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
      if (ev.data === undefined) continue;
      const parsed = { event: ev.event, data: JSON.parse(ev.data) as Record<string, unknown> };
      events.push(parsed);
      await onEvent(parsed);
    }
  }
  return events;
}

const reasoningOf = (model: string, seq: number) => `Okay, the user greets ${model}. A short, friendly answer will do (sim #${seq}).`;

describe('reasoning and tool calls reach the fan-out and /api/chat (docs/design.md#what-the-frontends-get)', () => {
  test('a reasoning model\'s fan-out stream sends its first reasoning event before the upstream has sent its second reasoning chunk (causal: the simulator holds it until then)', async () => {
    const s = await sixStack();
    // The upstream stream stops after its first data chunk (the first reasoning delta) until the gate opens.
    s.sim.addRule({ match: { model: GLM }, type: 'gate', gate: 'first-reasoning', afterChunks: 1, times: 1 });
    let sentWhenSeen: number | undefined;
    const noReasoning = setTimeout(() => s.sim.release('first-reasoning'), 4000); // a bound, so a failing orche ends the test
    const events = await readFanout(`${s.url}/api/chat/fanout`, { providers: ['glm45'], messages: hi, stream: true }, (ev) => {
      if (ev.event === 'reasoning' && sentWhenSeen === undefined) {
        sentWhenSeen = s.sim.calls[0].chunksSent;
        s.sim.release('first-reasoning');
      }
    });
    clearTimeout(noReasoning);
    // When the client saw the first reasoning event, the upstream had sent exactly one chunk: the gate still held the second.
    expect(sentWhenSeen).toBe(1);
    const reasoning = events.filter((e) => e.event === 'reasoning');
    expect(reasoning[0].data).toEqual({ provider: 'glm45', content: expect.any(String) });
    expect(reasoning.map((e) => e.data.content).join('')).toBe(reasoningOf(GLM, 1));
    // Reasoning first, then the answer, then done with finish_reason and usage (with cost).
    const firstDelta = events.findIndex((e) => e.event === 'delta');
    expect(events.findIndex((e) => e.event === 'reasoning')).toBeLessThan(firstDelta);
    expect(events.filter((e) => e.event === 'delta').map((e) => e.data.content).join('')).toBe(`Hello from ${GLM} (sim #1)`);
    const done = events.find((e) => e.event === 'done')!.data;
    expect(done).toMatchObject({ provider: 'glm45', model: GLM, finish_reason: 'stop', tool_calls: null, usage: { cost: expect.any(Number), completion_tokens_details: { reasoning_tokens: expect.any(Number) } } });
    expect((done.usage as { cost: number }).cost).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { succeeded: 1, failed: 0 } });
  });

  test('the JSON fan-out carries each provider\'s reasoning, reasoning_details, tool_calls, finish_reason and usage', async () => {
    const s = await sixStack();
    const res = await s.http.post('/api/chat/fanout').send({ providers: ['glm45', 'kimi'], messages: hi });
    expect(res.status).toBe(200);
    const byProvider = Object.fromEntries(res.body.results.map((r: { provider: string }) => [r.provider, r]));
    const glmSeq = s.sim.calls.find((c) => c.model === GLM)!.seq;
    const reasoning = reasoningOf(GLM, glmSeq);
    expect(byProvider.glm45).toMatchObject({
      ok: true,
      content: `Hello from ${GLM} (sim #${glmSeq})`,
      reasoning,
      reasoning_details: [{ type: 'reasoning.text', text: reasoning, format: 'unknown', index: 0 }],
      tool_calls: null,
      finish_reason: 'stop',
      usage: { cost: expect.any(Number), total_tokens: expect.any(Number) },
    });
    expect(byProvider.kimi).toMatchObject({ ok: true, reasoning: null, reasoning_details: null, tool_calls: null, finish_reason: 'stop', usage: { cost: expect.any(Number) } });
  });

  test('/api/chat carries the reasoning; with reasoning:{exclude:true} the field reaches the upstream and no reasoning comes back', async () => {
    const s = await sixStack();
    const shown = await s.http.post('/api/chat').send({ provider: 'gptoss', messages: hi });
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ provider: 'gptoss', reasoning: reasoningOf('openai/gpt-oss-120b', 1), message: { reasoning: reasoningOf('openai/gpt-oss-120b', 1) } });
    const excluded = await s.http.post('/api/chat').send({ provider: 'gptoss', messages: hi, reasoning: { exclude: true } });
    expect(excluded.status).toBe(200);
    expect((s.sim.calls[1].body as { reasoning?: unknown }).reasoning).toEqual({ exclude: true });
    expect(excluded.body).toMatchObject({ reasoning: null, reasoning_details: null, content: expect.stringContaining('Hello from') });
    // Streamed, the same field goes up too.
    await postSse(`${s.url}/api/chat`, { provider: 'gptoss', messages: hi, stream: true, reasoning: { exclude: true } });
    expect(s.sim.calls[2].body).toMatchObject({ stream: true, reasoning: { exclude: true } });
  });

  test('a fan-out with tools relays the tool-call deltas as they arrive; done carries the calls they add up to and finish_reason tool_calls', async () => {
    const s = await sixStack();
    const events = await readFanout(`${s.url}/api/chat/fanout`, { providers: ['kimi', 'qwen3'], messages: hi, tools: weather, stream: true });
    for (const provider of ['kimi', 'qwen3']) {
      const calls = events.filter((e) => e.event === 'tool_call' && e.data.provider === provider).map((e) => e.data);
      const seq = s.sim.calls.find((c) => c.model === (provider === 'kimi' ? KIMI : 'qwen/qwen3-235b-a22b'))!.seq;
      expect(calls[0]).toEqual({ provider, index: 0, id: `call_sim${seq}_0`, name: 'get_weather', arguments: '' });
      expect(calls.length).toBeGreaterThan(2);
      for (const c of calls.slice(1)) expect(c).toEqual({ provider, index: 0, id: null, name: null, arguments: expect.any(String) });
      expect(calls.map((c) => c.arguments).join('')).toBe('{"city":"sim"}');
      const done = events.find((e) => e.event === 'done' && e.data.provider === provider)!.data;
      expect(done).toMatchObject({ finish_reason: 'tool_calls', tool_calls: [{ id: `call_sim${seq}_0`, type: 'function', function: { name: 'get_weather', arguments: '{"city":"sim"}' } }] });
    }
    // Each tool_call event went out before its leg's done.
    const kimiDone = events.findIndex((e) => e.event === 'done' && e.data.provider === 'kimi');
    expect(events.findIndex((e) => e.event === 'tool_call' && e.data.provider === 'kimi')).toBeLessThan(kimiDone);
    expect((s.sim.calls[0].body as { tools: unknown }).tools).toEqual(weather);
  });

  test('streamed reasoning of a fan-out leg that fails after its first bytes: the reasoning so far, then the leg\'s error; the others finish', async () => {
    const s = await sixStack();
    s.sim.addRule({ match: { model: 'qwen/qwen3-235b-a22b' }, type: 'stream-error', afterChunks: 1, times: 1 });
    const events = await readFanout(`${s.url}/api/chat/fanout`, { providers: ['qwen3', 'glm45'], messages: hi, stream: true });
    expect(events.filter((e) => e.event === 'reasoning' && e.data.provider === 'qwen3').length).toBe(3);
    expect(events.find((e) => e.event === 'error')).toMatchObject({ data: { provider: 'qwen3', error: { code: 502, type: 'upstream_stream_error' } } });
    expect(events.find((e) => e.event === 'done')).toMatchObject({ data: { provider: 'glm45', finish_reason: 'stop' } });
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { succeeded: 1, failed: 1 } });
  });
});
