/**
 * The scenarios of the core issue, over HTTP, against the simulator: each must hold exactly.
 */
import { keyId } from '../../providers/keys/keys';
import { callsBy, hi, startStack, type Stack } from '../helpers/stack';

const A = 'sk-or-v1-scenario-key-a-0001';
const B = 'sk-or-v1-scenario-key-b-0002';
const C = 'sk-or-v1-scenario-key-c-0003';
// A fixed clock 10 s into a minute, shared by orche and the simulator, so "within a minute" is exact.
const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);
const nextMinute = Date.UTC(2026, 10, 22, 12, 31, 0);

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

function onlyKimi(extra: Record<string, string> = {}) {
  return { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}`, ...extra };
}

async function chatN(s: Stack, n: number, provider = 'kimi') {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await s.http.post('/api/chat').send({ provider, messages: hi }));
  return out;
}

test('(a) 3 keys with a budget of 5 per minute: 15 requests succeed, 5 per key, zero 429s upstream', async () => {
  let now = T0;
  stack = await startStack(onlyKimi({ PROVIDER_KIMI_RPM: '5' }), { keys: [{ key: A }, { key: B }, { key: C }], now: () => now }, { now: () => now });
  const replies = await chatN(stack, 15);
  expect(replies.map((r) => r.status)).toEqual(Array(15).fill(200));
  expect([A, B, C].map((k) => callsBy(stack!.sim, k).length)).toEqual([5, 5, 5]);
  expect(stack.sim.calls.filter((c) => c.status === 429)).toHaveLength(0);
  // The 16th is refused by orche itself, before upstream sees it, until the next minute.
  const sixteenth = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect(sixteenth.status).toBe(429);
  expect(sixteenth.body.error.type).toBe('all_keys_rate_limited');
  expect(sixteenth.body.error.retry_after_ms).toBe(nextMinute - T0);
  expect(sixteenth.headers['retry-after']).toBe(String((nextMinute - T0) / 1000));
  expect(stack.sim.calls).toHaveLength(15);
  now = nextMinute + 1;
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
});

test('(b) key A limited at 2/min upstream: 15 succeed, exactly one 429 (A\'s third call), A cools until the reset sent', async () => {
  const now = T0;
  stack = await startStack(onlyKimi(), { keys: [{ key: A, rpm: 2 }, { key: B, rpm: 10 }, { key: C, rpm: 10 }], now: () => now }, { now: () => now });
  const replies = await chatN(stack, 15);
  expect(replies.map((r) => r.status)).toEqual(Array(15).fill(200));
  const limited = stack.sim.calls.filter((c) => c.status === 429);
  expect(limited).toHaveLength(1);
  expect(limited[0].key).toBe(A);
  expect(callsBy(stack.sim, A).map((c) => c.status)).toEqual([200, 200, 429]);
  const status = await stack.http.get('/api/key-status/kimi');
  const a = status.body.keys.find((k: { id: string }) => k.id === keyId(A));
  expect(a.state).toBe('cooling');
  expect(a.cooldown_until).toBe(nextMinute);
  expect(a.cooldown_remaining_ms).toBe(nextMinute - T0);
  expect(a.rate_limited).toBe(1);
  expect(status.body.rotations).toBe(1);
  expect(status.body.last_rotation).toMatchObject({ from: keyId(A), reason: 'rate_limited' });
});

test('(c) a revoked key (401) is disabled after one call and never used again until reactivated', async () => {
  stack = await startStack({ ...onlyKimi(), ORCHE_ADMIN_TOKEN: 'admin-token-123' }, { keys: [{ key: A, revoked: true }, { key: B }, { key: C }] });
  const replies = await chatN(stack, 9);
  expect(replies.every((r) => r.status === 200)).toBe(true);
  expect(callsBy(stack.sim, A)).toHaveLength(1);
  const a = (await stack.http.get('/api/key-status/kimi')).body.keys.find((k: { id: string }) => k.id === keyId(A));
  expect(a).toMatchObject({ state: 'disabled', reason: 'invalid_key' });

  stack.sim.updateKey(A, { revoked: false });
  const re = await stack.http.post(`/api/keys/${keyId(A)}/reactivate`).set('Authorization', 'Bearer admin-token-123');
  expect(re.status).toBe(200);
  await chatN(stack, 3);
  expect(callsBy(stack.sim, A).length).toBe(2);
});

test('(d) fan-out to six providers with two failing: four answers, two errors, in about the slowest call', async () => {
  const keys = ['GLM45', 'GPTOSS', 'LLAMA3', 'KIMI', 'QWEN3', 'FALCON'].map((id) => `sk-or-v1-fanout-${id.toLowerCase()}-key`);
  const env: Record<string, string> = {};
  ['GLM45', 'GPTOSS', 'LLAMA3', 'KIMI', 'QWEN3', 'FALCON'].forEach((id, i) => (env[`PROVIDER_${id}_API_KEY`] = keys[i]));
  stack = await startStack(env, { keys: keys.map((key) => ({ key })) });
  // Rules match in order: the two failures first, then 300 ms for everyone else.
  stack.sim.addRule({ match: { model: 'moonshotai/kimi-k2' }, type: 'status', status: 400, message: 'bad' });
  stack.sim.addRule({ match: { model: 'qwen/qwen3-235b-a22b' }, type: 'invalid-key' });
  for (const key of keys) stack.sim.addRule({ match: { key }, type: 'delay', delayMs: 300 });
  const started = Date.now();
  const res = await stack.http.post('/api/chat/fanout').send({ messages: hi });
  const elapsed = Date.now() - started;
  expect(res.status).toBe(200);
  expect(res.body.succeeded).toBe(4);
  expect(res.body.failed).toBe(2);
  const failed = res.body.results.filter((r: { ok: boolean }) => !r.ok).map((r: { provider: string }) => r.provider).sort();
  expect(failed).toEqual(['kimi', 'qwen3']);
  for (const r of res.body.results.filter((x: { ok: boolean }) => x.ok)) expect(r.content).toMatch(/Hello from/);
  expect(elapsed).toBeGreaterThanOrEqual(300);
  expect(elapsed).toBeLessThan(4 * 300); // the sum would be 1800 ms
});

test('(e) free-models-per-min on one key cools its declared account for every provider; other accounts keep serving', async () => {
  const now = T0;
  const D = 'sk-or-v1-scenario-key-d-0004';
  stack = await startStack(
    {
      PROVIDER_KIMI_API_KEY: `team1:${A}`,
      PROVIDER_KIMI_BACKUP_KEYS: `team1:${B},${C}`,
      PROVIDER_KIMI_MODEL: 'moonshotai/kimi-k2:free',
      PROVIDER_QWEN3_API_KEY: `team1:${B}`,
      PROVIDER_QWEN3_BACKUP_KEYS: D,
      PROVIDER_QWEN3_MODEL: 'qwen/qwen3-235b-a22b:free',
    },
    {
      accounts: [{ id: 'user_team1', freeRpm: 2 }],
      keys: [{ key: A, account: 'user_team1' }, { key: B, account: 'user_team1' }, { key: C }, { key: D }],
      now: () => now,
    },
    { now: () => now },
  );
  const replies = await chatN(stack, 8);
  expect(replies.every((r) => r.status === 200)).toBe(true);
  // team1 served 2 calls, then one 429 on the third, then nothing more for team1 until the reset.
  const team1 = stack.sim.calls.filter((c) => c.account === 'user_team1');
  expect(team1.map((c) => c.status)).toEqual([200, 200, 429]);
  expect(team1[2].outcome).toBe('free-per-min');
  const qwen = await chatN(stack, 4, 'qwen3');
  expect(qwen.every((r) => r.status === 200 && r.body.key_id === keyId(D))).toBe(true);
  expect(stack.sim.calls.filter((c) => c.account === 'user_team1')).toHaveLength(3);
  const kimiKeys = (await stack.http.get('/api/key-status/kimi')).body.keys;
  expect(kimiKeys.filter((k: { state: string }) => k.state === 'cooling').map((k: { id: string }) => k.id).sort()).toEqual([keyId(A), keyId(B)].sort());
  for (const k of kimiKeys.filter((x: { state: string }) => x.state === 'cooling')) expect(k.cooldown_until).toBe(nextMinute);
});

test('(e\') an account learned from user_id: a key that reported the same user_id is skipped too', async () => {
  const now = T0;
  stack = await startStack(
    { ...onlyKimi(), PROVIDER_KIMI_MODEL: 'moonshotai/kimi-k2:free', PROVIDER_KIMI_STRATEGY: 'failover' },
    { accounts: [{ id: 'user_shared', freeRpm: 100 }], keys: [{ key: A, account: 'user_shared' }, { key: B, account: 'user_shared' }, { key: C }], now: () => now },
    { now: () => now },
  );
  // Failover, A primary. With A set aside for one request, B answers a 502 that carries its user_id.
  stack.sim.addRule({ match: { key: B }, type: 'status', status: 502, times: 1 });
  await stack.orche.ctx.pool.setDisabled(keyId(A), 'manual', now);
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  await stack.orche.ctx.pool.setDisabled(keyId(A), null, now);
  expect(stack.sim.calls.map((c) => [c.key, c.status])).toEqual([[B, 502], [C, 200]]);
  // Now A hits the account's per-minute limit.
  stack.sim.addRule({ match: { key: A }, type: 'free-per-min', times: 1 });
  stack.sim.calls.length = 0;
  const replies = await chatN(stack, 3);
  expect(replies.every((r) => r.status === 200)).toBe(true);
  // A got the 429; B, same account, got nothing; C served.
  expect(stack.sim.calls.map((c) => [c.key, c.status])).toEqual([[A, 429], [C, 200], [C, 200], [C, 200]]);
});

test('(f) an upstream "rate-limited upstream" 429 cools no key and the fallback provider answers', async () => {
  const Q = 'sk-or-v1-scenario-qwen-0005';
  stack = await startStack({ ...onlyKimi(), PROVIDER_KIMI_FALLBACK: 'qwen3', PROVIDER_QWEN3_API_KEY: Q }, { keys: [{ key: A }, { key: B }, { key: C }, { key: Q }] });
  stack.sim.addRule({ match: { model: 'moonshotai/kimi-k2' }, type: 'upstream-429', retryAfterSeconds: 30 });
  const res = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect(res.status).toBe(200);
  expect(res.body.provider).toBe('qwen3');
  expect(res.body.key_id).toBe(keyId(Q));
  expect(stack.sim.calls.map((c) => c.outcome)).toEqual(['upstream-429', 'ok']);
  const kimi = (await stack.http.get('/api/key-status/kimi')).body;
  expect(kimi.keys.every((k: { state: string }) => k.state === 'active')).toBe(true);
  // The congested model is skipped straight to the fallback while the hint lasts: no wasted call.
  const again = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect(again.body.provider).toBe('qwen3');
  expect(stack.sim.calls).toHaveLength(3);
});

describe('(g) every key cooling for 2 s', () => {
  async function coolAll(maxWait: string) {
    stack = await startStack({ ...onlyKimi(), ORCHE_MAX_WAIT_MS: maxWait }, { keys: [{ key: A }, { key: B }, { key: C }] });
    for (const key of [A, B, C]) stack.sim.addRule({ match: { key }, type: 'generic-429', headers: { 'Retry-After': '2' }, times: 1 });
  }

  test('with ORCHE_MAX_WAIT_MS=3000 the request waits for the soonest recovery and succeeds', async () => {
    await coolAll('3000');
    const started = Date.now();
    const res = await stack!.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(200);
    expect(res.body.attempts).toBe(4);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
  });

  test('with ORCHE_MAX_WAIT_MS=1000 it fails at once with 429 all_keys_rate_limited and Retry-After', async () => {
    await coolAll('1000');
    const started = Date.now();
    const res = await stack!.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(res.status).toBe(429);
    expect(res.body.error.type).toBe('all_keys_rate_limited');
    expect(res.headers['retry-after']).toBe('2');
    expect(res.body.error.retry_after_ms).toBeGreaterThan(1500);
    expect(res.body.error.retry_after_ms).toBeLessThanOrEqual(2000);
    expect(stack!.sim.calls).toHaveLength(3);
  });
});
