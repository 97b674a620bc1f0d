/**
 * The HTTP contract of docs/design.md#the-outcome-table and the per-status rules of §4, over HTTP against the simulator.
 */
import { keyId } from '../../../providers/keys/keys';
import { callsBy, hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-api-test-key-a-1111';
const B = 'sk-or-v1-api-test-key-b-2222';
const C = 'sk-or-v1-api-test-key-c-3333';
const ADMIN = 'admin-token-for-tests';

let stack: Stack;
async function start(env: Record<string, string> = {}, keys = [{ key: A }, { key: B }, { key: C }]) {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}`, ORCHE_ADMIN_TOKEN: ADMIN, ...env }, { keys });
  return stack;
}
afterEach(async () => stack?.close());

const chat = (body: unknown) => stack.http.post('/api/chat').send(body as object);
const keyOf = async (provider: string, key: string) =>
  (await stack.http.get(`/api/key-status/${provider}`)).body.keys.find((k: { id: string }) => k.id === keyId(key));

function expectErrorShape(body: { error: Record<string, unknown> }, code: number, type: string) {
  expect(body.error.code).toBe(code);
  expect(body.error.type).toBe(type);
  expect(typeof body.error.message).toBe('string');
}

describe('status routes', () => {
  test('/health, /ready, /status and /api/models report six providers, one configured', async () => {
    await start();
    const health = await stack.http.get('/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', providers: { total: 6, configured: 1, available: 1 }, store: { kind: 'memory', ok: true } });
    expect((await stack.http.get('/ready')).status).toBe(200);
    const status = await stack.http.get('/status');
    expect(status.body.providers).toHaveLength(6);
    const kimi = status.body.providers.find((p: { id: string }) => p.id === 'kimi');
    expect(kimi).toMatchObject({ model: 'moonshotai/kimi-k2', strategy: 'round-robin', configured: true, keys: { total: 3, active: 3, cooling: 0, disabled: 0 } });
    const glm = status.body.providers.find((p: { id: string }) => p.id === 'glm45');
    expect(glm).toMatchObject({ configured: false, available: false });
    const models = await stack.http.get('/api/models');
    expect(models.body).toContainEqual({ id: 'kimi', name: 'MoonshotAI Kimi', model: 'moonshotai/kimi-k2', available: true });
    expect(models.body).toContainEqual({ id: 'glm45', name: 'GLM-4.5', model: 'z-ai/glm-4.5', available: false });
  });

  test('/api/key-status lists ids and previews, never keys; unknown provider is 404 listing the valid ids', async () => {
    await start();
    const res = await stack.http.get('/api/key-status');
    const kimi = res.body.providers.find((p: { provider: string }) => p.provider === 'kimi');
    expect(kimi.keys.map((k: { id: string }) => k.id)).toEqual([keyId(A), keyId(B), keyId(C)]);
    expect(kimi.keys.map((k: { role: string }) => k.role)).toEqual(['primary', 'backup', 'backup']);
    // A 28-character key shows its first third at most (12 characters of a real 73-character key).
    expect(kimi.keys[0].preview).toBe('sk-or-v1-…111');
    expect(JSON.stringify(res.body)).not.toContain('key-a-1111');
    const upper = await stack.http.get('/api/key-status/KIMI');
    expect(upper.status).toBe(200);
    const unknown = await stack.http.get('/api/key-status/nope');
    expect(unknown.status).toBe(404);
    expectErrorShape(unknown.body, 404, 'unknown_provider');
    expect(unknown.body.error.valid_providers).toEqual(['glm45', 'gptoss', 'llama3', 'kimi', 'qwen3', 'falcon']);
  });

  test('/ready is 503 with a reason when no provider has a usable key', async () => {
    await start({}, [{ key: A, revoked: true } as never, { key: B, revoked: true } as never, { key: C, revoked: true } as never]);
    await chat({ provider: 'kimi', messages: hi });
    const ready = await stack.http.get('/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.error.message).toMatch(/no provider has a usable key/);
    expect((await stack.http.get('/health')).body.status).toBe('degraded');
  });
});

describe('request validation and the error shape', () => {
  beforeEach(() => start());

  test.each([
    [{ provider: 'kimi' }, 'messages'],
    [{ provider: 'kimi', messages: [] }, 'messages'],
    [{ provider: 'kimi', messages: [{ content: 'x' }] }, 'messages.0.role'],
    [{ provider: 'kimi', messages: [{ role: 'user', content: 42 }] }, 'messages.0.content'],
    [{ provider: 'kimi', messages: [{ role: 'assistant', content: null }] }, 'messages.0.content'],
    [{ messages: hi }, 'provider'],
    [{ provider: 42, messages: hi }, 'provider'],
    // The fields orche reads keep their types checked (docs/design.md#what-the-frontends-get); OpenRouter's own go upstream as sent (tests/server/routes/frontends.test.ts).
    [{ provider: 'kimi', messages: hi, stream: 'yes' }, 'stream'],
    [{ provider: 'kimi', messages: hi, user: 42 }, 'user'],
  ])('%j is a 400 naming %s', async (body, path) => {
    const res = await chat(body);
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 400, 'invalid_request');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    expect(stack.sim.calls).toHaveLength(0);
  });

  test('unknown provider → 404 with the valid ids; malformed JSON → 400; a body over 1 MiB → 413; unknown route → 404', async () => {
    const unknown = await chat({ provider: 'gpt5', messages: hi });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('kimi');
    const bad = await stack.http.post('/api/chat').set('Content-Type', 'application/json').send('{"provider":');
    expect(bad.status).toBe(400);
    expectErrorShape(bad.body, 400, 'invalid_json');
    const big = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: [{ role: 'user', content: 'x'.repeat(1_100_000) }] });
    expect(big.status).toBe(413);
    expectErrorShape(big.body, 413, 'payload_too_large');
    const none = await stack.http.get('/nope');
    expect(none.status).toBe(404);
    expectErrorShape(none.body, 404, 'not_found');
    const noBody = await stack.http.post('/api/chat');
    expect(noBody.status).toBe(400);
  });

  test('X-Request-Id is echoed when sane and generated otherwise', async () => {
    const echoed = await stack.http.get('/health').set('X-Request-Id', 'abc-123');
    expect(echoed.headers['x-request-id']).toBe('abc-123');
    const generated = await stack.http.get('/health').set('X-Request-Id', 'bad id with spaces');
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const onError = await chat({});
    expect(onError.headers['x-request-id']).toBeDefined();
  });
});

describe('admin routes', () => {
  test('without ORCHE_ADMIN_TOKEN they answer 403 and say how to enable them', async () => {
    await start({ ORCHE_ADMIN_TOKEN: '' });
    const res = await stack.http.post('/api/keys/reset');
    expect(res.status).toBe(403);
    expectErrorShape(res.body, 403, 'admin_disabled');
    expect(res.body.error.message).toContain('ORCHE_ADMIN_TOKEN');
  });

  test('401 without a token, 403 with a wrong one; disable, reactivate and reset work by key id', async () => {
    await start();
    expect((await stack.http.post(`/api/keys/${keyId(A)}/disable`)).status).toBe(401);
    expect((await stack.http.post(`/api/keys/${keyId(A)}/disable`).set('Authorization', 'Bearer wrong-token!')).status).toBe(403);
    const auth = { Authorization: `Bearer ${ADMIN}` };
    const dis = await stack.http.post(`/api/keys/${keyId(A)}/disable`).set(auth);
    expect(dis.body).toEqual({ id: keyId(A), state: 'disabled', providers: ['kimi'] });
    for (let i = 0; i < 4; i++) await chat({ provider: 'kimi', messages: hi });
    expect(callsBy(stack.sim, A)).toHaveLength(0);
    expect((await keyOf('kimi', A)).reason).toBe('manual');
    await stack.http.post(`/api/keys/${keyId(A)}/reactivate`).set(auth);
    expect((await keyOf('kimi', A)).state).toBe('active');
    expect((await stack.http.post('/api/keys/ffffffffffff/disable').set(auth)).status).toBe(404);

    stack.sim.addRule({ match: { key: B }, type: 'generic-429', headers: { 'Retry-After': '600' }, times: 1 });
    for (let i = 0; i < 3; i++) await chat({ provider: 'kimi', messages: hi });
    expect((await keyOf('kimi', B)).state).toBe('cooling');
    const reset = await stack.http.post('/api/keys/reset?provider=kimi').set(auth);
    expect(reset.body).toEqual({ reset: 'kimi' });
    expect((await keyOf('kimi', B)).state).toBe('active');
  });
});

describe('upstream outcomes (docs/design.md#the-outcome-table)', () => {
  test('5xx is retried with backoff on the next key; the failure is counted, no key cools', async () => {
    await start({ PROVIDER_KIMI_STRATEGY: 'failover' });
    stack.sim.addRule({ match: { key: A }, type: 'status', status: 502, times: 1 });
    const res = await chat({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ attempts: 2, key_id: keyId(B) });
    expect(await keyOf('kimi', A)).toMatchObject({ state: 'active', failures: 1 });
    // failover returns to the primary at once: a 5xx is not the key's fault
    expect((await chat({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(A));
  });

  test('5xx on every attempt ends in 502 upstream_error after ORCHE_MAX_ATTEMPTS calls', async () => {
    await start({ ORCHE_MAX_ATTEMPTS: '3' });
    stack.sim.addRule({ type: 'status', status: 503 });
    const res = await chat({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(502);
    expectErrorShape(res.body, 502, 'upstream_error');
    expect(res.body.error).toMatchObject({ upstream_status: 503, attempts: 3 });
    expect(stack.sim.calls).toHaveLength(3);
  });

  test('a hang ends at ORCHE_REQUEST_TIMEOUT_MS per attempt and the next key answers', async () => {
    await start({ ORCHE_REQUEST_TIMEOUT_MS: '150', PROVIDER_KIMI_STRATEGY: 'failover' });
    stack.sim.addRule({ match: { key: A }, type: 'hang', times: 1 });
    const res = await chat({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(200);
    expect(res.body.key_id).toBe(keyId(B));
    expect((await keyOf('kimi', A)).failures).toBe(1);
  });

  test('timeouts on every attempt end in 504 upstream_timeout', async () => {
    await start({ ORCHE_REQUEST_TIMEOUT_MS: '100', ORCHE_MAX_ATTEMPTS: '2' });
    stack.sim.addRule({ type: 'hang' });
    const res = await chat({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(504);
    expectErrorShape(res.body, 504, 'upstream_timeout');
  });

  test('an error inside a 200 body is treated as the status it carries', async () => {
    await start({ PROVIDER_KIMI_STRATEGY: 'failover' });
    stack.sim.addRule({ match: { key: A }, type: 'error-in-200', status: 429, times: 1 });
    const res = await chat({ provider: 'kimi', messages: hi });
    expect(res.body).toMatchObject({ attempts: 2, key_id: keyId(B) });
    expect(await keyOf('kimi', A)).toMatchObject({ state: 'cooling', rate_limited: 1 });
  });

  test('402 without credits disables the key (insufficient_credits); a transient 402 with Retry-After only cools its account', async () => {
    await start({ PROVIDER_KIMI_STRATEGY: 'failover' }, [{ key: A, credits: false } as never, { key: B }, { key: C }]);
    expect((await chat({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(B));
    expect(await keyOf('kimi', A)).toMatchObject({ state: 'disabled', reason: 'insufficient_credits' });
    stack.sim.addRule({ match: { key: B }, type: 'transient-402', times: 1 });
    expect((await chat({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(C));
    expect(await keyOf('kimi', B)).toMatchObject({ state: 'cooling', reason: 'in_flight_budget' });
  });

  test('403 with a limit_source cools the key until resets_at; a moderation 403 goes back to the client, unretried', async () => {
    await start({ PROVIDER_KIMI_STRATEGY: 'failover' });
    stack.sim.addRule({ match: { key: A }, type: 'cap-403', times: 1 });
    expect((await chat({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(B));
    expect(await keyOf('kimi', A)).toMatchObject({ state: 'cooling', reason: 'key_cap' });
    stack.sim.addRule({ type: 'moderation-403', times: 1 });
    const res = await chat({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(403);
    expectErrorShape(res.body, 403, 'moderation');
    expect(stack.sim.calls.filter((c) => c.outcome === 'moderation-403')).toHaveLength(1);
  });

  test('a 400 from upstream is returned, not retried', async () => {
    await start();
    stack.sim.addRule({ type: 'status', status: 400, message: 'context too long', times: 1 });
    const res = await chat({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(400);
    expectErrorShape(res.body, 400, 'upstream_rejected');
    expect(stack.sim.calls).toHaveLength(1);
  });

  test('a recovering key gets one probe request, then its full share', async () => {
    let now = Date.UTC(2026, 10, 22, 12, 0, 5);
    stack = await startStack(
      { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B },
      { keys: [{ key: A }, { key: B }], now: () => now },
      { now: () => now },
    );
    stack.sim.addRule({ match: { key: A }, type: 'generic-429', headers: { 'Retry-After': '10' }, times: 1 });
    await chat({ provider: 'kimi', messages: hi });
    expect((await keyOf('kimi', A)).state).toBe('cooling');
    now += 10_001;
    expect(await keyOf('kimi', A)).toMatchObject({ state: 'active', recovering: true, reason: 'recovering' });
    // While A's probe is in flight (the simulator holds it 100 ms), concurrent requests go to B.
    stack.sim.addRule({ match: { key: A }, type: 'delay', delayMs: 100, times: 1 });
    const before = callsBy(stack.sim, A).length;
    const replies = await Promise.all([1, 2, 3, 4].map(() => chat({ provider: 'kimi', messages: hi })));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(callsBy(stack.sim, A).length - before).toBe(1);
    expect((await keyOf('kimi', A)).recovering).toBe(false);
    // After its probe succeeded, A takes its full share again.
    const after = [];
    for (let i = 0; i < 4; i++) after.push((await chat({ provider: 'kimi', messages: hi })).body.key_id);
    expect(after.filter((id) => id === keyId(A))).toHaveLength(2);
  });

  test('a provider with no keys answers 503 provider_unconfigured; all keys disabled answers 503 no_usable_keys', async () => {
    await start({}, [{ key: A, revoked: true } as never, { key: B, revoked: true } as never, { key: C, revoked: true } as never]);
    const unconf = await chat({ provider: 'glm45', messages: hi });
    expect(unconf.status).toBe(503);
    expectErrorShape(unconf.body, 503, 'provider_unconfigured');
    // Three 401s disable the three keys; the same request then knows no key is left.
    const first = await chat({ provider: 'kimi', messages: hi });
    expect(first.status).toBe(503);
    const none = await chat({ provider: 'kimi', messages: hi });
    expect(none.status).toBe(503);
    expectErrorShape(none.body, 503, 'no_usable_keys');
    expect(stack.sim.calls).toHaveLength(3);
  });

  test('the start-up model check marks a configured slug the upstream does not list', async () => {
    await start({ PROVIDER_KIMI_MODEL: 'moonshotai/kimi-k9' });
    await stack.orche.checkModels();
    const status = await stack.http.get('/status');
    expect(status.body.models_check).toEqual({ checked: true, missing: ['moonshotai/kimi-k9'] });
    expect(status.body.providers.find((p: { id: string }) => p.id === 'kimi').model_listed).toBe(false);
    expect(stack.logs.parsed().some((l) => l.message === 'configured model is not listed upstream' && l.model === 'moonshotai/kimi-k9')).toBe(true);
  });

  test('one log line per request and one per rotation, with ids, never keys', async () => {
    await start({ PROVIDER_KIMI_STRATEGY: 'failover' });
    stack.sim.addRule({ match: { key: A }, type: 'generic-429', times: 1 });
    await chat({ provider: 'kimi', messages: hi }).set('X-Request-Id', 'req-1');
    const lines = stack.logs.parsed();
    const requests = lines.filter((l) => l.message === 'request' && l.request_id === 'req-1');
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ route: '/api/chat', provider: 'kimi', key_id: keyId(B), attempts: 2, status: 200 });
    const rotations = lines.filter((l) => l.message === 'rotation');
    expect(rotations).toEqual([expect.objectContaining({ level: 'info', provider: 'kimi', from: keyId(A), to: keyId(B), reason: 'rate_limited' })]);
  });
});
