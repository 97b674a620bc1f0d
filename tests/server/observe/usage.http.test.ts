/**
 * GET /api/usage (per-minute buckets kept for a day) and GET /api/rotations, over HTTP against the simulator.
 */
import { keyId } from '../../../providers/keys/keys';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-usage-key-a-0001';
const B = 'sk-or-v1-usage-key-b-0002';
const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);
const MIN = 60_000;

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function chat(s: Stack, n: number, provider = 'kimi'): Promise<number> {
  let tokens = 0;
  for (let i = 0; i < n; i++) {
    const res = await s.http.post('/api/chat').send({ provider, messages: hi });
    if (res.status === 200) tokens += res.body.usage.total_tokens;
  }
  return tokens;
}

test('calls, successes, 429s, failures and tokens fall into the minute, hour and day windows', async () => {
  let now = T0;
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' },
    { keys: [{ key: A }, { key: B }], now: () => now },
    { now: () => now },
  );
  // Two days ago: outside every window (and overwritten in the ring by nothing else).
  now = T0 - 2 * 1440 * MIN;
  await chat(stack, 1);
  // Three hours ago: in the day only.
  now = T0 - 180 * MIN;
  const dayTokens = await chat(stack, 2);
  // Ten minutes ago: a 429 on A (cools it), then B serves; in the hour and the day.
  now = T0 - 10 * MIN;
  stack.sim.addRule({ match: { key: A }, type: 'generic-429', retryAfterSeconds: 60, times: 1 });
  const hourTokens = await chat(stack, 1);
  // Now: one 500 then a success on A (the cooldown is long over), and one more success.
  now = T0;
  stack.sim.addRule({ match: { key: A }, type: 'status', status: 500, times: 1 });
  const minuteTokens = await chat(stack, 2);

  const res = await stack.http.get('/api/usage?provider=kimi&series=15');
  expect(res.status).toBe(200);
  expect(res.body.windows_ms).toEqual({ minute: MIN, hour: 60 * MIN, day: 1440 * MIN });
  const [kimi] = res.body.providers;
  expect(kimi.provider).toBe('kimi');
  expect(kimi.minute).toMatchObject({ calls: 3, successes: 2, rate_limited: 0, failures: 1, tokens: minuteTokens });
  expect(kimi.hour).toMatchObject({ calls: 5, successes: 3, rate_limited: 1, failures: 1, tokens: minuteTokens + hourTokens });
  expect(kimi.day).toMatchObject({ calls: 7, successes: 5, rate_limited: 1, failures: 1, tokens: minuteTokens + hourTokens + dayTokens });
  expect(kimi.minute.mean_latency_ms).toBe(0); // the fixed clock does not move during a call

  const a = kimi.keys.find((k: { id: string }) => k.id === keyId(A));
  const b = kimi.keys.find((k: { id: string }) => k.id === keyId(B));
  // Now: A's 500 is retried on B (a failed key is avoided), then A serves the second request.
  expect(a.minute).toMatchObject({ calls: 2, successes: 1, failures: 1 });
  expect(b.minute).toMatchObject({ calls: 1, successes: 1 });
  expect(a.hour).toMatchObject({ calls: 3, successes: 1, rate_limited: 1, failures: 1 });
  expect(b.hour).toMatchObject({ calls: 2, successes: 2, rate_limited: 0, failures: 0 });
  // Calls per minute, oldest first: the 429 and B's answer 10 minutes ago, and the 3 calls now.
  expect(kimi.calls_per_minute).toHaveLength(15);
  expect(kimi.calls_per_minute[14]).toBe(3);
  expect(kimi.calls_per_minute[4]).toBe(2);
  expect(kimi.calls_per_minute.reduce((x: number, y: number) => x + y, 0)).toBe(5);
  expect(JSON.stringify(res.body)).not.toContain('sk-or-');
});

test('mean latency is measured with the real clock', async () => {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A }, { keys: [{ key: A }], latencyMs: 40 });
  await chat(stack, 2);
  const kimi = (await stack.http.get('/api/usage')).body.providers.find((p: { provider: string }) => p.provider === 'kimi');
  expect(kimi.minute.calls).toBe(2);
  expect(kimi.minute.mean_latency_ms).toBeGreaterThanOrEqual(40);
  expect(kimi.minute.mean_latency_ms).toBeLessThan(1000);
});

test('bad usage queries answer 400 / 404 in the error shape', async () => {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A }, { keys: [{ key: A }] });
  expect((await stack.http.get('/api/usage?series=0')).body.error).toMatchObject({ code: 400, type: 'invalid_request' });
  expect((await stack.http.get('/api/usage?provider=nope')).status).toBe(404);
  const idle = (await stack.http.get('/api/usage?provider=kimi')).body.providers[0];
  expect(idle.day).toEqual({ calls: 0, successes: 0, rate_limited: 0, failures: 0, tokens: 0, cost_usd: 0, mean_latency_ms: null });
  expect(idle.calls_per_minute).toEqual(Array(30).fill(0));
});

test('GET /api/rotations: newest first, filtered by provider, bounded by limit, validated', async () => {
  const now = T0;
  const G = 'sk-or-v1-usage-key-g-0003';
  const H = 'sk-or-v1-usage-key-h-0004';
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_GLM45_API_KEY: G, PROVIDER_GLM45_BACKUP_KEYS: H, ORCHE_MAX_WAIT_MS: '0' },
    { keys: [{ key: A }, { key: B }, { key: G }, { key: H }], now: () => now },
    { now: () => now },
  );
  stack.sim.addRule({ match: { key: A }, type: 'generic-429', retryAfterSeconds: 60, times: 1 });
  await chat(stack, 1, 'kimi');
  // A revoked key: its 401 is confirmed by GET /key (docs/design.md#blame-on-evidence), so the rotation says invalid_key.
  stack.sim.updateKey(G, { revoked: true });
  await chat(stack, 1, 'glm45');
  stack.sim.addRule({ match: { key: B }, type: 'generic-429', retryAfterSeconds: 60, times: 1 });
  // B cools; A is cooling too: no rotation can happen, the request fails with 429.
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(429);

  const all = (await stack.http.get('/api/rotations')).body.rotations;
  expect(all).toEqual([
    { at: new Date(T0).toISOString(), provider: 'glm45', from: keyId(G), to: keyId(H), reason: 'invalid_key' },
    { at: new Date(T0).toISOString(), provider: 'kimi', from: keyId(A), to: keyId(B), reason: 'rate_limited' },
  ]);
  expect((await stack.http.get('/api/rotations?provider=KIMI')).body.rotations).toEqual([all[1]]);
  expect((await stack.http.get('/api/rotations?limit=1')).body.rotations).toEqual([all[0]]);
  const bad = await stack.http.get('/api/rotations?limit=0');
  expect(bad.status).toBe(400);
  expect(bad.body.error.type).toBe('invalid_request');
  expect((await stack.http.get('/api/rotations?provider=nope')).status).toBe(404);
});
