import { keyId } from '../../providers/keys/keys';
import { type FaultRule, type Simulator, type SimulatorOptions, startSimulator } from '../../scripts/simulator';

const FREE = 'z-ai/glm-4.5:free';
const FREE2 = 'moonshotai/kimi-k2:free';
const PAID = 'openai/gpt-oss-120b';
/** A default model that does not reason. */
const PLAIN = FREE2;
// 2026-03-10T12:00:10Z: ten seconds into a whole minute.
const T0 = Date.UTC(2026, 2, 10, 12, 0, 10);

let open: Simulator[] = [];

async function start(opts: SimulatorOptions = {}): Promise<Simulator> {
  const sim = await startSimulator(opts);
  open.push(sim);
  return sim;
}

afterEach(async () => {
  await Promise.all(open.map((s) => s.close()));
  open = [];
});

function chat(sim: Simulator, key: string | undefined, body: unknown, signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (key !== undefined) headers.Authorization = `Bearer ${key}`;
  return fetch(`${sim.baseUrl}/chat/completions`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
}

function ask(sim: Simulator, key: string, model: string, extra: Record<string, unknown> = {}): Promise<Response> {
  return chat(sim, key, { model, messages: [{ role: 'user', content: 'Hi there' }], ...extra });
}

async function json(res: Response): Promise<any> {
  return JSON.parse(await res.text());
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function sseEvents(text: string): string[] {
  return text.split('\n\n').filter((e) => e !== '');
}

describe('chat completions', () => {
  test('answers an OpenAI-shaped completion without rate-limit headers', async () => {
    const sim = await start({ keys: [{ key: 'sk-a' }] });
    const res = await ask(sim, 'sk-a', PAID);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-ratelimit-limit')).toBeNull();
    const body = await json(res);
    expect(body).toMatchObject({
      id: 'gen-1',
      object: 'chat.completion',
      model: PAID,
      provider: 'SimProvider',
      choices: [{ index: 0, finish_reason: 'stop', native_finish_reason: 'stop', message: { role: 'assistant', content: `Hello from ${PAID} (sim #1)` } }],
    });
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    // A paid model's answer carries its cost, and its parts (usage as OpenRouter sends it: see responses.ts).
    expect(body.usage.cost).toBeGreaterThan(0);
    expect(body.usage.cost_details.upstream_inference_cost).toBe(body.usage.cost);
    expect(body.usage.cost_details.upstream_inference_prompt_cost + body.usage.cost_details.upstream_inference_completions_cost).toBeCloseTo(body.usage.cost, 12);
    expect(sim.calls[0]).toMatchObject({ seq: 1, keyId: keyId('sk-a'), key: 'sk-a', account: `user_${keyId('sk-a')}`, model: PAID, status: 200, outcome: 'ok', stream: false, closedByClient: false });
    expect((sim.calls[0].body as { model: string }).model).toBe(PAID);
  });

  test('401 for a missing, unknown or revoked key', async () => {
    const sim = await start({ keys: [{ key: 'sk-revoked', account: 'user_r', revoked: true }] });
    let res = await chat(sim, undefined, { model: PAID });
    expect(res.status).toBe(401);
    expect(await json(res)).toEqual({ error: { code: 401, message: 'No auth credentials found' } });
    res = await ask(sim, 'sk-unknown', PAID);
    expect(res.status).toBe(401);
    expect(await json(res)).toEqual({ error: { code: 401, message: 'User not found.' } });
    res = await ask(sim, 'sk-revoked', PAID);
    expect(res.status).toBe(401);
    expect(await json(res)).toEqual({ error: { code: 401, message: 'User not found.' }, user_id: 'user_r' });
    expect(sim.calls.map((c) => c.outcome)).toEqual(['invalid-key', 'invalid-key', 'invalid-key']);
  });

  test('402 for a key without credits', async () => {
    const sim = await start({ keys: [{ key: 'sk-broke', account: 'user_b', credits: false }] });
    const res = await ask(sim, 'sk-broke', PAID);
    expect(res.status).toBe(402);
    const body = await json(res);
    expect(body.error.code).toBe(402);
    expect(body.error.message).toMatch(/^Insufficient credits/);
    expect(body.user_id).toBe('user_b');
  });

  test('400 for an unknown model and for malformed JSON', async () => {
    const sim = await start({ keys: [{ key: 'sk-a', account: 'user_a' }] });
    let res = await ask(sim, 'sk-a', 'nope/model');
    expect(res.status).toBe(400);
    expect(await json(res)).toEqual({ error: { code: 400, message: 'nope/model is not a valid model ID' }, user_id: 'user_a' });
    res = await chat(sim, 'sk-a', '{"model":');
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe(400);
  });

  test('acceptAnyKey serves any Bearer key on its own account', async () => {
    const sim = await start({ acceptAnyKey: true });
    expect((await ask(sim, 'sk-whatever', PAID)).status).toBe(200);
    expect(sim.calls[0].account).toBe(`user_${keyId('sk-whatever')}`);
  });

  test('latency delays every answer', async () => {
    // A large signal (300 ms), so that a busy machine cannot blur the difference.
    const sim = await start({ keys: [{ key: 'sk-a' }], latencyMs: 300 });
    let t = Date.now();
    await ask(sim, 'sk-a', PAID);
    expect(Date.now() - t).toBeGreaterThanOrEqual(295);
    sim.setLatency(0);
    t = Date.now();
    await ask(sim, 'sk-a', PAID);
    expect(Date.now() - t).toBeLessThan(150);
  });

  test('each call records how many calls were in flight when it arrived, itself included', async () => {
    const sim = await start({ keys: [{ key: 'sk-a' }], latencyMs: 200 });
    const first = ask(sim, 'sk-a', PAID);
    await until(() => sim.calls.length === 1);
    const second = ask(sim, 'sk-a', PAID);
    await Promise.all([first, second]);
    await ask(sim, 'sk-a', PAID);
    expect(sim.calls.map((c) => c.inFlight)).toEqual([1, 2, 1]);
  });
});

describe('rate limits', () => {
  test('free models: 20 per minute per account across its keys, reset at the next whole minute', async () => {
    let now = T0;
    const sim = await start({
      now: () => now,
      keys: [{ key: 'sk-t1a', account: 'user_team1' }, { key: 'sk-t1b', account: 'user_team1' }, { key: 'sk-t2', account: 'user_team2' }],
    });
    for (let i = 0; i < 10; i++) {
      expect((await ask(sim, 'sk-t1a', FREE)).status).toBe(200);
      expect((await ask(sim, 'sk-t1b', FREE2)).status).toBe(200);
    }
    const res = await ask(sim, 'sk-t1b', FREE);
    expect(res.status).toBe(429);
    const reset = String(Date.UTC(2026, 2, 10, 12, 1, 0));
    expect(await res.text()).toBe(
      `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min. ","metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"${reset}"},"provider_name":null}},"user_id":"user_team1"}`,
    );
    expect(res.headers.get('x-ratelimit-limit')).toBe('20');
    expect(res.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(res.headers.get('x-ratelimit-reset')).toBe(reset);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(sim.calls.at(-1)).toMatchObject({ status: 429, outcome: 'free-per-min', account: 'user_team1' });

    expect((await ask(sim, 'sk-t1a', FREE)).status).toBe(429);
    expect((await ask(sim, 'sk-t2', FREE)).status).toBe(200); // another account
    expect((await ask(sim, 'sk-t1a', PAID)).status).toBe(200); // paid models are not limited per account

    now = Date.UTC(2026, 2, 10, 12, 0, 59, 999);
    expect((await ask(sim, 'sk-t1a', FREE)).status).toBe(429);
    now = Date.UTC(2026, 2, 10, 12, 1, 0);
    expect((await ask(sim, 'sk-t1a', FREE)).status).toBe(200);
  });

  test('windowMs compresses the per-minute window: the account limit and the 429 reset follow it', async () => {
    let now = T0; // 12:00:10.000, a whole 10 s boundary
    const sim = await start({ now: () => now, windowMs: 10_000, accounts: [{ id: 'user_c', freeRpm: 2 }], keys: [{ key: 'sk-c1', account: 'user_c' }, { key: 'sk-c2', account: 'user_c' }] });
    now = T0 + 3_000;
    expect((await ask(sim, 'sk-c1', FREE)).status).toBe(200);
    expect((await ask(sim, 'sk-c2', FREE2)).status).toBe(200);
    const res = await ask(sim, 'sk-c1', FREE);
    expect(res.status).toBe(429);
    const reset = String(T0 + 10_000);
    const body = await json(res);
    expect(body.error.message).toBe('Rate limit exceeded: free-models-per-min. ');
    expect(body.error.metadata.headers).toEqual({ 'X-RateLimit-Limit': '2', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': reset });
    expect(res.headers.get('x-ratelimit-reset')).toBe(reset);
    now = T0 + 9_999;
    expect((await ask(sim, 'sk-c2', FREE)).status).toBe(429);
    now = T0 + 10_000;
    expect((await ask(sim, 'sk-c2', FREE)).status).toBe(200);
  });

  test('free models: 50 served calls per UTC day; rejected calls do not count', async () => {
    let now = T0;
    const sim = await start({ now: () => now, retryAfter: true, keys: [{ key: 'sk-a', account: 'user_a' }] });
    let served = 0;
    for (let minute = 0; served < 50; minute++) {
      now = T0 + minute * 60_000;
      for (let i = 0; i < 20 && served < 50; i++, served++) expect((await ask(sim, 'sk-a', FREE)).status).toBe(200);
      if (served < 50) expect((await ask(sim, 'sk-a', FREE)).status).toBe(429);
    }
    now += 60_000;
    const res = await ask(sim, 'sk-a', FREE);
    expect(res.status).toBe(429);
    const body = await json(res);
    expect(body.error.message).toBe('Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day');
    expect(body.error.metadata.headers).toEqual({ 'X-RateLimit-Limit': '50', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(Date.UTC(2026, 2, 11)) });
    expect(Number(res.headers.get('retry-after'))).toBe(Math.ceil((Date.UTC(2026, 2, 11) - now) / 1000));
    now = Date.UTC(2026, 2, 11);
    expect((await ask(sim, 'sk-a', FREE)).status).toBe(200);
  });

  test('high-balance accounts get the high-balance per-day message', async () => {
    const sim = await start({ now: () => T0, accounts: [{ id: 'user_rich', highBalance: true, freeRpd: 1 }], keys: [{ key: 'sk-r', account: 'user_rich' }] });
    expect((await ask(sim, 'sk-r', FREE)).status).toBe(200);
    const body = await json(await ask(sim, 'sk-r', FREE));
    expect(body.error.message).toBe('Rate limit exceeded: free-models-per-day-high-balance.');
    expect(body.error.metadata).toMatchObject({ limit_source: 'openrouter_free_tier_daily', headers: { 'X-RateLimit-Limit': '1' } });
  });

  test('per-key rpm counts every model; accountLimits off/all', async () => {
    const sim = await start({ now: () => T0, keys: [{ key: 'sk-slow', account: 'user_s', rpm: 2 }, { key: 'sk-other', account: 'user_s' }] });
    expect((await ask(sim, 'sk-slow', PAID)).status).toBe(200);
    expect((await ask(sim, 'sk-slow', FREE)).status).toBe(200);
    const res = await ask(sim, 'sk-slow', PAID);
    expect(res.status).toBe(429);
    const reset = String(Date.UTC(2026, 2, 10, 12, 1));
    expect(await json(res)).toEqual({
      error: { code: 429, message: 'Rate limit exceeded', metadata: { headers: { 'X-RateLimit-Limit': '2', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': reset } } },
      user_id: 'user_s',
    });
    expect(res.headers.get('x-ratelimit-reset')).toBe(reset);
    expect(sim.calls.at(-1)?.outcome).toBe('key-rate-limit');
    expect((await ask(sim, 'sk-other', PAID)).status).toBe(200);

    const off = await start({ now: () => T0, accountLimits: 'off', accounts: [{ id: 'u', freeRpm: 1 }], keys: [{ key: 'k', account: 'u' }] });
    expect((await ask(off, 'k', FREE)).status).toBe(200);
    expect((await ask(off, 'k', FREE)).status).toBe(200);
    const all = await start({ now: () => T0, accountLimits: 'all', accounts: [{ id: 'u', freeRpm: 1 }], keys: [{ key: 'k', account: 'u' }] });
    expect((await ask(all, 'k', PAID)).status).toBe(200);
    expect((await ask(all, 'k', PAID)).status).toBe(429);
  });
});

describe('fault rules', () => {
  const cases: Array<[FaultRule, number, (body: any, res: Response) => void]> = [
    [{ type: 'model-cap' }, 429, (b, r) => {
      expect(b.error.message).toMatch(new RegExp(`^Rate limit exceeded: limit_rpm/${FREE}/[0-9a-f-]{36}\\. High demand for ${FREE} on OpenRouter - limited to 8 requests per minute\\. Please retry shortly\\.$`));
      expect(b.error.metadata).toMatchObject({ limit_source: 'openrouter_shared_capacity', headers: { 'X-RateLimit-Limit': '8', 'X-RateLimit-Reset': String(Date.UTC(2026, 2, 10, 12, 1)) } });
      expect(r.headers.get('x-ratelimit-limit')).toBe('8');
    }],
    [{ type: 'upstream-429', retryAfterSeconds: 7 }, 429, (b) => {
      expect(b.error.message).toBe('Provider returned error');
      expect(b.error.metadata).toEqual({
        provider_name: 'SimUpstream',
        raw: `${FREE} is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations`,
        limit_source: 'upstream_provider_shared_pool',
        error_type: 'rate_limit_exceeded',
        retry_after_seconds: 7,
      });
    }],
    [{ type: 'capacity', retryAfterSeconds: 40 }, 429, (b) => {
      expect(b.error.message).toBe(`All providers for ${FREE} are at capacity. Retry after 40 seconds.`);
      expect(b.error.availability).toEqual({ code: 'capacity_exhausted', retryable: true, retry_after: 40 });
    }],
    [{ type: 'generic-429' }, 429, (b) => {
      expect(b.error).toEqual({ code: 429, message: 'Rate limit exceeded', metadata: { error_type: 'rate_limit_exceeded' } });
    }],
    [{ type: 'free-per-min' }, 429, (b) => expect(b.error.message).toBe('Rate limit exceeded: free-models-per-min. ')],
    [{ type: 'free-per-day' }, 429, (b) => expect(b.error.metadata.headers['X-RateLimit-Limit']).toBe('50')],
    [{ type: 'transient-402', retryAfterSeconds: 3 }, 402, (b, r) => {
      expect(b.error.metadata.limit_source).toBe('openrouter_in_flight_budget');
      expect(r.headers.get('retry-after')).toBe('3');
    }],
    [{ type: 'no-credits' }, 402, (b) => expect(b.error.message).toMatch(/^Insufficient credits/)],
    [{ type: 'invalid-key' }, 401, (b) => expect(b.error.message).toBe('User not found.')],
    [{ type: 'cap-403' }, 403, (b) => {
      expect(b.error.metadata.limit_source).toBe('key_daily_cap');
      expect(Date.parse(b.error.metadata.resets_at)).toBe(Date.UTC(2026, 2, 11));
    }],
    [{ type: 'moderation-403' }, 403, (b) => {
      expect(b.error.message).toBe('Your input was flagged');
      expect(b.error.metadata).toMatchObject({ reasons: expect.any(Array), flagged_input: expect.any(String) });
    }],
    [{ type: 'status', status: 503, message: 'No available providers', metadata: { x: 1 } }, 503, (b) => {
      expect(b.error).toEqual({ code: 503, message: 'No available providers', metadata: { x: 1 } });
    }],
    [{ type: 'error-in-200' }, 200, (b) => {
      expect(b.error).toEqual({ code: 429, message: 'Rate limit exceeded', metadata: { error_type: 'rate_limit_exceeded' } });
      expect(b.choices).toBeUndefined();
    }],
    [{ type: 'error-in-200', status: 502, message: 'Provider returned error' }, 200, (b) => {
      expect(b.error).toMatchObject({ code: 502, message: 'Provider returned error' });
    }],
    [{ type: 'generic-429', headers: { 'X-Extra': 'yes' }, metadata: { remedy_hint: 'wait' } }, 429, (b, r) => {
      expect(b.error.metadata).toEqual({ error_type: 'rate_limit_exceeded', remedy_hint: 'wait' });
      expect(r.headers.get('x-extra')).toBe('yes');
    }],
  ];

  test.each(cases)('%j answers %i', async (rule, status, check) => {
    const sim = await start({ now: () => T0, keys: [{ key: 'sk-a', account: 'user_a' }] });
    sim.addRule(rule);
    const res = await ask(sim, 'sk-a', FREE);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = await json(res);
    expect(body.user_id).toBe('user_a');
    check(body, res);
    expect(sim.calls[0]).toMatchObject({ outcome: rule.type, status });
  });

  test('rules match by key, account and model, in order, and run out after `times`', async () => {
    const sim = await start({
      keys: [{ key: 'sk-a', account: 'user_1' }, { key: 'sk-b', account: 'user_1' }, { key: 'sk-c', account: 'user_2' }],
    });
    sim.addRule({ match: { key: 'sk-a' }, type: 'status', status: 500, times: 1 });
    sim.addRule({ match: { account: 'user_1', model: PAID }, type: 'status', status: 503, times: 2 });
    sim.addRule({ match: { key: keyId('sk-c') }, type: 'generic-429' });
    expect((await ask(sim, 'sk-a', PAID)).status).toBe(500);
    expect((await ask(sim, 'sk-a', PAID)).status).toBe(503);
    expect((await ask(sim, 'sk-b', FREE)).status).toBe(200);
    expect((await ask(sim, 'sk-b', PAID)).status).toBe(503);
    expect((await ask(sim, 'sk-b', PAID)).status).toBe(200);
    expect((await ask(sim, 'sk-c', PAID)).status).toBe(429);
    expect((await ask(sim, 'sk-c', PAID)).status).toBe(429);
    sim.clearRules();
    expect((await ask(sim, 'sk-c', PAID)).status).toBe(200);
  });

  test('a rule 429 is not counted against the limits', async () => {
    const sim = await start({ now: () => T0, accounts: [{ id: 'u', freeRpm: 1 }], keys: [{ key: 'k', account: 'u' }] });
    sim.addRule({ type: 'model-cap', times: 3 });
    for (let i = 0; i < 3; i++) expect((await ask(sim, 'k', FREE)).status).toBe(429);
    expect((await ask(sim, 'k', FREE)).status).toBe(200);
    expect((await ask(sim, 'k', FREE)).status).toBe(429);
  });

  test('hang: the call stays open until the client aborts, recorded closedByClient', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    sim.addRule({ type: 'hang', times: 1 });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    await expect(chat(sim, 'k', { model: PAID }, ctl.signal)).rejects.toThrow();
    const hung = sim.calls.find((c) => c.outcome === 'hang');
    expect(hung).toBeDefined();
    await until(() => hung?.closedByClient === true);
  });

  test('reset and truncated make fetch fail; garbage is an HTML 502; delay answers late', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    sim.addRule({ type: 'reset', times: 1 });
    await expect(ask(sim, 'k', PAID)).rejects.toThrow();
    sim.addRule({ type: 'truncated', times: 1 });
    await expect(ask(sim, 'k', PAID).then((r) => r.text())).rejects.toThrow();
    sim.addRule({ type: 'garbage', times: 1 });
    const garbage = await ask(sim, 'k', PAID);
    expect(garbage.status).toBe(502);
    expect(garbage.headers.get('content-type')).toBe('text/html');
    expect(await garbage.text()).toMatch(/^<html>/);
    sim.addRule({ type: 'delay', delayMs: 40, times: 1 });
    const t = Date.now();
    expect((await ask(sim, 'k', PAID)).status).toBe(200);
    expect(Date.now() - t).toBeGreaterThanOrEqual(35);
    expect(sim.calls.map((c) => [c.outcome, c.closedByClient])).toEqual([
      ['reset', false], ['truncated', false], ['garbage', false], ['delay', false],
    ]);
  });
});

describe('streaming', () => {
  test('processing comment, content chunks, finish, empty-choices usage chunk, [DONE]', async () => {
    // A model that does not reason: its stream is content only (reasoning models: the tests below).
    const sim = await start({ keys: [{ key: 'k' }], stream: { chunks: 3 } });
    const res = await ask(sim, 'k', PLAIN, { stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const events = sseEvents(await res.text());
    expect(events[0]).toBe(': OPENROUTER PROCESSING');
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(1, -1).map((e) => {
      expect(e.startsWith('data: ')).toBe(true);
      return JSON.parse(e.slice(6));
    });
    expect(chunks).toHaveLength(5);
    for (const c of chunks) expect(c).toMatchObject({ id: 'gen-1', object: 'chat.completion.chunk', model: PLAIN, provider: 'SimProvider' });
    const content = chunks.slice(0, 3).map((c) => {
      expect(c.choices[0].finish_reason).toBeNull();
      return c.choices[0].delta.content as string;
    }).join('');
    expect(content).toBe(`Hello from ${PLAIN} (sim #1)`);
    expect(chunks[3].choices[0].finish_reason).toBe('stop');
    expect(chunks[4].choices).toEqual([]);
    expect(chunks[4].usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), cost: 0 });
    expect(sim.calls[0]).toMatchObject({ stream: true, status: 200, outcome: 'ok', closedByClient: false });
  });

  test('errors before the first chunk are JSON with their status', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    sim.addRule({ type: 'generic-429', times: 1 });
    const res = await ask(sim, 'k', FREE, { stream: true });
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toBe('application/json');
  });

  test('stream-error: chunks, then an error chunk, no [DONE]; non-streaming calls pass the rule by', async () => {
    const sim = await start({ keys: [{ key: 'k', account: 'u' }], stream: { processingComment: false } });
    sim.addRule({ type: 'stream-error', afterChunks: 2, metadata: { error_type: 'provider_overloaded' } });
    expect((await ask(sim, 'k', PLAIN)).status).toBe(200);
    const res = await ask(sim, 'k', PLAIN, { stream: true });
    expect(res.status).toBe(200);
    const events = sseEvents(await res.text());
    expect(events).toHaveLength(3);
    const last = JSON.parse(events[2].slice(6));
    expect(last.object).toBe('chat.completion.chunk');
    expect(last.error).toMatchObject({ code: 502, message: 'Provider returned error', metadata: { error_type: 'provider_overloaded' } });
    expect(last.choices).toEqual([{ index: 0, delta: { content: '' }, finish_reason: 'error' }]);
    expect(sim.calls.map((c) => c.outcome)).toEqual(['ok', 'stream-error']);
  });

  test('stream.roleDelta opens every stream with the empty assistant delta, as OpenRouter does', async () => {
    const sim = await start({ keys: [{ key: 'k' }], stream: { chunks: 2, roleDelta: true } });
    const events = sseEvents(await (await ask(sim, 'k', PLAIN, { stream: true })).text());
    expect(events[0]).toBe(': OPENROUTER PROCESSING');
    expect(JSON.parse(events[1].slice(6)).choices).toEqual([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, native_finish_reason: null }]);
    expect(JSON.parse(events[2].slice(6)).choices[0].delta.content).not.toBe('');
  });

  test('stream-open-error: keep-alive, the empty role delta, then an error chunk; non-streaming calls pass the rule by', async () => {
    const sim = await start({ keys: [{ key: 'k', account: 'u' }] });
    sim.addRule({ type: 'stream-open-error', metadata: { error_type: 'rate_limit_exceeded' } });
    expect((await ask(sim, 'k', FREE)).status).toBe(200);
    const res = await ask(sim, 'k', FREE, { stream: true });
    expect(res.status).toBe(200);
    const events = sseEvents(await res.text());
    expect(events[0]).toBe(': OPENROUTER PROCESSING');
    const [role, error] = events.slice(1).map((e) => JSON.parse(e.slice(6)));
    expect(role.choices).toEqual([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, native_finish_reason: null }]);
    expect(error.error).toEqual({ code: 429, message: 'Rate limit exceeded', metadata: { error_type: 'rate_limit_exceeded' } });
    expect(error.choices[0].finish_reason).toBe('error');
    expect(events).toHaveLength(3);
    expect(sim.calls.map((c) => c.outcome)).toEqual(['ok', 'stream-open-error']);
  });

  test('upstream-429-message: JSON 429 with only the message, or in a stream an error chunk after the role delta', async () => {
    const sim = await start({ keys: [{ key: 'k', account: 'u' }], stream: { processingComment: false } });
    sim.addRule({ type: 'upstream-429-message', times: 2 });
    const text = `${FREE} is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations`;
    const plain = await ask(sim, 'k', FREE);
    expect(plain.status).toBe(429);
    expect(await json(plain)).toEqual({ error: { code: 429, message: text }, user_id: 'u' });
    const res = await ask(sim, 'k', FREE, { stream: true });
    expect(res.status).toBe(200);
    const events = sseEvents(await res.text()).map((e) => JSON.parse(e.slice(6)));
    expect(events[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    expect(events[1].error).toEqual({ code: 429, message: text });
  });
});

describe('real answers orche once misread (issue 10)', () => {
  test('model-cap-daily: limit_rpd, "Daily limit reached", limit and remaining 0, no reset', async () => {
    const sim = await start({ keys: [{ key: 'k', account: 'u' }] });
    sim.addRule({ type: 'model-cap-daily', times: 1 });
    const res = await ask(sim, 'k', FREE);
    expect(res.status).toBe(429);
    expect(res.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(res.headers.get('x-ratelimit-reset')).toBeNull();
    const body = await json(res);
    expect(body.error.message).toMatch(/^Rate limit exceeded: limit_rpd\/z-ai\/glm-4\.5\/[0-9a-f]{8}\. Daily limit reached for z-ai\/glm-4\.5:free via SimUpstream\.$/);
    expect(body.error.metadata).toEqual({ headers: { 'X-RateLimit-Limit': '5000', 'X-RateLimit-Remaining': '0' }, limit_source: 'openrouter_shared_capacity' });
  });

  test.each(['total', 'daily', 'weekly', 'monthly'] as const)('key-limit-403 (%s): message and code only, no limit_source', async (window) => {
    const sim = await start({ keys: [{ key: 'k' }] });
    sim.addRule({ type: 'key-limit-403', keyLimit: window, times: 1 });
    const res = await ask(sim, 'k', PAID);
    expect(res.status).toBe(403);
    expect(await json(res)).toEqual({ error: { message: `Key limit exceeded (${window} limit). Manage it using https://openrouter.ai/settings/keys`, code: 403 } });
  });

  test('error-form: a 200 carrying the error as http_status, nested, a bare string, or finish_reason "error" alone', async () => {
    const sim = await start({ keys: [{ key: 'k', account: 'u' }] });
    for (const form of ['http_status', 'nested', 'bare', 'finish-error'] as const) sim.addRule({ type: 'error-form', form, times: 1 });
    const bodies = [];
    for (let i = 0; i < 4; i++) {
      const res = await ask(sim, 'k', PAID);
      expect(res.status).toBe(200);
      bodies.push(await json(res));
    }
    expect(bodies[0]).toEqual({ error: { message: 'Rate limit exceeded', http_status: 429 }, user_id: 'u' });
    expect(bodies[1]).toEqual({ error: { error: { message: 'Rate limit exceeded', code: 429 } }, user_id: 'u' });
    expect(bodies[2]).toEqual({ error: 'Rate limit exceeded' });
    expect(bodies[3].choices).toEqual([{ index: 0, finish_reason: 'error', native_finish_reason: 'error', message: { role: 'assistant', content: '' } }]);
    expect(bodies[3].error).toBeUndefined();
  });

  test('edge-1015: a plain-text 429 "error code: 1015", Retry-After when asked for, streams too', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    sim.addRule({ type: 'edge-1015', retryAfterSeconds: 12, times: 2 });
    const res = await ask(sim, 'k', PAID);
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(res.headers.get('retry-after')).toBe('12');
    expect(await res.text()).toBe('error code: 1015');
    expect((await ask(sim, 'k', PAID, { stream: true })).status).toBe(429);
    expect(sim.calls.map((c) => [c.outcome, c.status])).toEqual([['edge-1015', 429], ['edge-1015', 429]]);
  });
});

describe('streaming, client side', () => {
  test('a client closing mid-stream is recorded closedByClient', async () => {
    const sim = await start({ keys: [{ key: 'k' }], stream: { chunks: 50, chunkDelayMs: 10 } });
    const res = await ask(sim, 'k', FREE, { stream: true });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('OPENROUTER PROCESSING');
    await reader.cancel();
    await until(() => sim.calls[0].closedByClient);
    expect(sim.calls[0].stream).toBe(true);
  });
});

describe('other routes', () => {
  test('GET /models and GET /key', async () => {
    const sim = await start({ now: () => T0, models: ['a/b', 'a/b:free'], keys: [{ key: 'sk-or-v1-abcdef', account: 'u' }] });
    const models = await json(await fetch(`${sim.baseUrl}/models`));
    expect(models.data).toEqual([
      { id: 'a/b', name: 'a/b', context_length: 131072, pricing: { prompt: '0', completion: '0' } },
      { id: 'a/b:free', name: 'a/b:free', context_length: 131072, pricing: { prompt: '0', completion: '0' } },
    ]);
    await ask(sim, 'sk-or-v1-abcdef', 'a/b:free');
    const key = await json(await fetch(`${sim.baseUrl}/key`, { headers: { Authorization: 'Bearer sk-or-v1-abcdef' } }));
    expect(key.data).toMatchObject({ label: 'sk-or-v1-…def', limit: null, is_free_tier: true, free_model_daily_requests: { limit: 50, remaining: 49, used: 1 } });
    expect((await fetch(`${sim.baseUrl}/key`, { headers: { Authorization: 'Bearer nope' } })).status).toBe(401);
    const missing = await fetch(`http://127.0.0.1:${sim.port}/nothing`);
    expect(missing.status).toBe(404);
    expect((await json(missing)).error.code).toBe(404);
  });

  test('control routes: calls, rules, keys, latency, reset', async () => {
    const sim = await start({ now: () => T0 });
    const ctl = `http://127.0.0.1:${sim.port}/_sim`;
    const post = (path: string, body: unknown) => fetch(`${ctl}/${path}`, { method: 'POST', body: JSON.stringify(body) });

    expect((await post('keys', { key: 'k', account: 'u' })).status).toBe(204);
    expect((await ask(sim, 'k', PAID)).status).toBe(200);
    expect((await post('keys', { key: 'k', credits: false })).status).toBe(204);
    expect((await ask(sim, 'k', PAID)).status).toBe(402);
    await post('keys', { key: 'k', credits: true });

    expect((await post('rules', { type: 'status', status: 500, times: 1 })).status).toBe(204);
    expect((await ask(sim, 'k', PAID)).status).toBe(500);
    await post('rules', { type: 'generic-429' });
    expect((await ask(sim, 'k', PAID)).status).toBe(429);
    expect((await fetch(`${ctl}/rules`, { method: 'DELETE' })).status).toBe(204);
    expect((await ask(sim, 'k', PAID)).status).toBe(200);

    const calls = (await json(await fetch(`${ctl}/calls?since=2`))).calls;
    expect(calls.map((c: { seq: number; status: number }) => [c.seq, c.status])).toEqual([[3, 500], [4, 429], [5, 200]]);
    expect(calls[0]).toEqual({ seq: 3, at: T0, keyId: keyId('k'), account: 'u', model: PAID, status: 500, outcome: 'status', stream: false, closedByClient: false, inFlight: 1, chunksSent: 0 });
    expect((await json(await fetch(`${ctl}/calls`))).calls).toHaveLength(5);

    expect((await post('latency', { ms: 30 })).status).toBe(204);
    const t = Date.now();
    await ask(sim, 'k', PAID);
    expect(Date.now() - t).toBeGreaterThanOrEqual(25);
    await post('latency', { ms: 0 });

    expect((await post('reset', {})).status).toBe(204);
    expect(sim.calls).toHaveLength(0);
    expect((await ask(sim, 'k', PAID)).status).toBe(200); // keys stay
    expect((await post('rules', { nope: 1 })).status).toBe(400);
    expect((await fetch(`${ctl}/whatever`)).status).toBe(404);
  });

  test('close() ends promptly with a hanging request open', async () => {
    const sim = await startSimulator({ keys: [{ key: 'k' }] });
    sim.addRule({ type: 'hang' });
    const pending = ask(sim, 'k', PAID).then(() => 'answered', () => 'failed');
    await until(() => sim.calls.length === 1);
    const t = Date.now();
    await sim.close();
    expect(Date.now() - t).toBeLessThan(500);
    expect(await pending).toBe('failed');
    expect(sim.calls[0].closedByClient).toBe(false);
  });
});

/**
 * The shapes reasoning models, tools and cost take on OpenRouter. Real samples they follow
 * (cited in scripts/simulator/responses.ts): the z-ai/glm-4.5 stream gen-1759420128-LjBsuYJf6lKeyy66nQs9
 * (DeepInfra, 2025-10-02) for reasoning deltas; huggingface/responses.js PR #19 (2025-07-31) for the
 * `delta.reasoning` field; the deepseek/deepseek-v4-pro-0813 stream gen-1790156376-H3hQlnMSJkVWkGJ4ROxR
 * (2026-09-23) for tool-call deltas; underpass-ai/AXLR adapters/openrouter/usage_cost_test.go (the
 * usage of a z-ai/glm-5.3-flash stream, 2026-10-09) for usage with cost and cost_details.
 */
describe('reasoning, tool calls and cost', () => {
  const GLM = 'z-ai/glm-4.5';
  const weather = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const dataOf = (events: string[]) => events.filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));

  test('a reasoning model streams reasoning deltas (delta.reasoning and reasoning_details) before its content; the last chunk carries usage with cost', async () => {
    const sim = await start({ keys: [{ key: 'k' }], stream: { chunks: 2 } });
    const chunks = dataOf(sseEvents(await (await ask(sim, 'k', GLM, { stream: true })).text()));
    const reasoning = chunks.filter((c) => c.choices[0]?.delta?.reasoning);
    expect(reasoning).toHaveLength(3);
    for (const c of reasoning) {
      const d = c.choices[0].delta;
      expect(d).toEqual({ role: 'assistant', content: '', reasoning: d.reasoning, reasoning_details: [{ type: 'reasoning.text', text: d.reasoning, format: 'unknown', index: 0 }] });
      expect(c.choices[0]).toMatchObject({ finish_reason: null, native_finish_reason: null });
    }
    expect(reasoning.map((c) => c.choices[0].delta.reasoning).join('')).toBe(`Okay, the user greets ${GLM}. A short, friendly answer will do (sim #1).`);
    const firstContent = chunks.findIndex((c) => c.choices[0]?.delta?.content);
    expect(firstContent).toBe(3);
    expect(chunks[firstContent].choices[0].delta).toEqual({ role: 'assistant', content: expect.any(String), reasoning: null, reasoning_details: [] });
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({
      prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), total_tokens: expect.any(Number),
      cost: expect.any(Number), is_byok: false,
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0, audio_tokens: 0 },
      cost_details: { upstream_inference_cost: last.usage.cost, upstream_inference_prompt_cost: expect.any(Number), upstream_inference_completions_cost: expect.any(Number) },
      completion_tokens_details: { reasoning_tokens: expect.any(Number), image_tokens: 0 },
    });
    expect(last.usage.cost).toBeGreaterThan(0);
    expect(last.usage.completion_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(last.usage.completion_tokens).toBeGreaterThan(last.usage.completion_tokens_details.reasoning_tokens);
  });

  test('non-streamed: message.reasoning and reasoning_details; a :free variant costs 0; GET /models shows the prices', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    const body = await json(await ask(sim, 'k', GLM));
    const reasoning = `Okay, the user greets ${GLM}. A short, friendly answer will do (sim #1).`;
    expect(body.choices[0].message).toEqual({ role: 'assistant', content: `Hello from ${GLM} (sim #1)`, reasoning, reasoning_details: [{ type: 'reasoning.text', text: reasoning, format: 'unknown', index: 0 }] });
    expect(body.usage.cost).toBeGreaterThan(0);
    const free = await json(await ask(sim, 'k', `${GLM}:free`));
    expect(free.usage).toMatchObject({ cost: 0, cost_details: { upstream_inference_cost: 0 } });
    const models = await json(await fetch(`${sim.baseUrl}/models`));
    expect(models.data.find((m: { id: string }) => m.id === GLM).pricing).toEqual({ prompt: '4e-7', completion: '0.0000016' });
  });

  test('reasoning:{exclude:true} (or enabled:false, effort "none", include_reasoning:false) leaves the reasoning out; a model that does not reason never sends any', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    for (const extra of [{ reasoning: { exclude: true } }, { reasoning: { enabled: false } }, { reasoning: { effort: 'none' } }, { include_reasoning: false }]) {
      const body = await json(await ask(sim, 'k', GLM, extra));
      expect(body.choices[0].message).toEqual({ role: 'assistant', content: expect.any(String) });
      const text = await (await ask(sim, 'k', GLM, { ...extra, stream: true })).text();
      // Content deltas of a reasoning model still carry `"reasoning":null` (as real ones do); no reasoning text.
      expect(text).not.toMatch(/"reasoning":"|"reasoning_details":\[\{/);
      expect(text).toMatch(/"content":"Hello/);
    }
    expect((await json(await ask(sim, 'k', 'moonshotai/kimi-k2'))).choices[0].message).toEqual({ role: 'assistant', content: expect.any(String) });
  });

  test('tools sent: the answer calls the first one; streamed, its deltas name it first, then carry the arguments in pieces; finish_reason tool_calls', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    const body = await json(await ask(sim, 'k', 'moonshotai/kimi-k2', { tools: weather }));
    expect(body.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { tool_calls: [{ id: 'call_sim1_0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"sim"}' } }] } });
    const chunks = dataOf(sseEvents(await (await ask(sim, 'k', 'moonshotai/kimi-k2', { tools: weather, stream: true })).text()));
    const calls = chunks.filter((c) => c.choices[0]?.delta?.tool_calls).map((c) => c.choices[0].delta);
    expect(calls[0]).toEqual({ content: null, role: 'assistant', tool_calls: [{ index: 0, id: 'call_sim2_0', type: 'function', function: { name: 'get_weather', arguments: '' } }] });
    expect(calls.length).toBeGreaterThan(2);
    for (const d of calls.slice(1)) expect(Object.keys(d.tool_calls[0])).toEqual(['index', 'function']);
    expect(calls.map((d) => d.tool_calls[0].function.arguments).join('')).toBe('{"city":"sim"}');
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]).toMatchObject({ finish_reason: 'tool_calls', native_finish_reason: 'tool_calls' });
    const none = await json(await ask(sim, 'k', 'moonshotai/kimi-k2', { tools: weather, tool_choice: 'none' }));
    expect(none.choices[0].message.tool_calls).toBeUndefined();
  });

  test('a gate rule holds a stream after its first chunk until released; chunksSent counts what went out', async () => {
    const sim = await start({ keys: [{ key: 'k' }] });
    sim.addRule({ type: 'gate', gate: 'g1', afterChunks: 1, times: 1 });
    const res = await ask(sim, 'k', GLM, { stream: true });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('"reasoning":"')) text += new TextDecoder().decode((await reader.read()).value);
    await new Promise((r) => setTimeout(r, 20));
    expect(sim.calls[0].chunksSent).toBe(1);
    sim.release('g1');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(sim.calls[0].chunksSent).toBe(sseEvents(text).filter((e) => e.startsWith('data: ')).length);
  });
});
