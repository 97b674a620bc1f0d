/**
 * GET /metrics after real scenarios against the simulator: exact counter values, no key material.
 */
import { keyId } from '../../../providers/keys/keys';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-metrics-key-a-0001';
const B = 'sk-or-v1-metrics-key-b-0002';
const C = 'sk-or-v1-metrics-key-c-0003';
const G = 'sk-or-v1-metrics-key-g-0004';
const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** The value of one sample, labels given in any order; undefined when the series does not exist. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(labels).length === Object.keys(got).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function scrape(s: Stack): Promise<string> {
  const res = await s.http.get('/metrics');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text;
}

test('one key rate-limited in 15 requests: calls, rotations, cooldowns, key states and latency counts are exact', async () => {
  const now = T0;
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}` },
    { keys: [{ key: A, rpm: 2 }, { key: B }, { key: C }], now: () => now },
    { now: () => now },
  );
  for (let i = 0; i < 15; i++) expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);

  const text = await scrape(stack);
  const calls = (id: string, outcome: string) => sample(text, 'orche_upstream_calls_total', { provider: 'kimi', key_id: keyId(id), outcome });
  expect(calls(A, 'success')).toBe(2);
  expect(calls(A, 'cool')).toBe(1);
  expect(calls(B, 'success')! + calls(C, 'success')!).toBe(13);
  expect(calls(B, 'cool')).toBeUndefined();
  expect(sample(text, 'orche_rotations_total', { provider: 'kimi', reason: 'rate_limited' })).toBe(1);
  expect(sample(text, 'orche_cooldowns_total', { provider: 'kimi', scope: 'key', reason: 'rate_limited' })).toBe(1);
  expect(sample(text, 'orche_keys', { provider: 'kimi', state: 'cooling' })).toBe(1);
  expect(sample(text, 'orche_keys', { provider: 'kimi', state: 'active' })).toBe(2);
  expect(sample(text, 'orche_keys', { provider: 'kimi', state: 'disabled' })).toBe(0);
  expect(sample(text, 'orche_keys', { provider: 'glm45', state: 'active' })).toBe(0);
  expect(sample(text, 'orche_http_request_duration_seconds_count', { route: '/api/chat', provider: 'kimi', status: '200' })).toBe(15);
  expect(sample(text, 'orche_upstream_call_duration_seconds_count', { provider: 'kimi' })).toBe(16);
  // Every successful call carries usage; the counter sums total_tokens.
  const tokens = sample(text, 'orche_tokens_total', { provider: 'kimi', key_id: keyId(B) })! + sample(text, 'orche_tokens_total', { provider: 'kimi', key_id: keyId(C) })!;
  expect(tokens).toBeGreaterThan(13);
  // Standard process metrics, on this app's own registry.
  expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
  expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
  expect(text).not.toContain('sk-or-');
});

test('fan-out legs are counted by provider and result; a disabled key is counted by reason', async () => {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_GLM45_API_KEY: G }, { keys: [{ key: A }, { key: G, revoked: true }] });
  const res = await stack.http.post('/api/chat/fanout').send({ messages: hi });
  expect(res.status).toBe(200);
  expect(res.body.succeeded).toBe(1);
  const text = await scrape(stack);
  expect(sample(text, 'orche_fanout_results_total', { provider: 'kimi', result: 'ok' })).toBe(1);
  expect(sample(text, 'orche_fanout_results_total', { provider: 'glm45', result: 'failed' })).toBe(1);
  expect(sample(text, 'orche_keys_disabled_total', { provider: 'glm45', reason: 'invalid_key' })).toBe(1);
  expect(sample(text, 'orche_upstream_calls_total', { provider: 'glm45', key_id: keyId(G), outcome: 'disable' })).toBe(1);
  expect(sample(text, 'orche_http_request_duration_seconds_count', { route: '/api/chat/fanout', provider: '', status: '200' })).toBe(1);
  expect(text).not.toContain(G);
});

test('two apps in one process keep separate registries', async () => {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: A }, { keys: [{ key: A }] });
  const other = await startStack({ PROVIDER_KIMI_API_KEY: A }, { keys: [{ key: A }] });
  try {
    await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    const mine = await scrape(stack);
    const theirs = await scrape(other);
    expect(sample(mine, 'orche_upstream_calls_total', { provider: 'kimi', key_id: keyId(A), outcome: 'success' })).toBe(1);
    expect(sample(theirs, 'orche_upstream_calls_total', { provider: 'kimi', key_id: keyId(A), outcome: 'success' })).toBeUndefined();
  } finally {
    await other.close();
  }
});
