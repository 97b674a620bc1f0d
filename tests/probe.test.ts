/**
 * Key probing over OpenRouter's GET /key (simulator): rejected keys are disabled before any request,
 * keys disabled for credits come back when they have credit again.
 */
import { keyId } from '../providers/keys/keys';
import { callsBy, hi, startStack, type Stack } from './helpers/stack';

const A = 'sk-or-v1-probe-key-a-0001';
const B = 'sk-or-v1-probe-key-b-0002';
const C = 'sk-or-v1-probe-key-c-0003';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function keys(s: Stack, provider = 'kimi'): Promise<Record<string, { state: string; reason: string | null; probe: Record<string, unknown> | null }>> {
  const body = (await s.http.get(`/api/key-status/${provider}`)).body;
  return Object.fromEntries(body.keys.map((k: { id: string }) => [k.id, k]));
}

test('at start: a revoked key is disabled (invalid_key) before any user request touches it; probe data is shown', async () => {
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}`, PROVIDER_GLM45_API_KEY: A, ORCHE_PROBE_INTERVAL_MS: '600000' },
    { keys: [{ key: A }, { key: B, revoked: true }, { key: C }], accounts: [{ id: 'user_rich', highBalance: true }] },
  );
  stack.sim.updateKey(C, { account: 'user_rich' });
  await stack.orche.start();

  const before = await keys(stack);
  expect(before[keyId(B)]).toMatchObject({ state: 'disabled', reason: 'invalid_key', probe: { ok: false, status: 401 } });
  expect(before[keyId(A)].state).toBe('active');
  expect(before[keyId(A)].probe).toMatchObject({
    ok: true,
    status: 200,
    limit: null,
    limit_remaining: null,
    usage: 0,
    is_free_tier: true,
    free_model_daily_requests: { limit: 50, remaining: 50, used: 0 },
  });
  expect(before[keyId(C)].probe).toMatchObject({ is_free_tier: false, free_model_daily_requests: { limit: 1000 } });
  // A key shared by two providers is one key: glm45 shows the same probe.
  expect((await keys(stack, 'glm45'))[keyId(A)].probe).toEqual(before[keyId(A)].probe);

  for (let i = 0; i < 6; i++) expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  expect(callsBy(stack.sim, B)).toHaveLength(0);
  const raw = JSON.stringify(await stack.http.get('/api/key-status').then((r) => r.body));
  expect(raw).not.toContain('sk-or-v1-probe');
  expect(stack.logs.lines.join('\n')).not.toContain('sk-or-v1-probe');
});

test('a key disabled for credits by a 402 is re-enabled by the next probe once it has credit; one without stays disabled', async () => {
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover', ORCHE_PROBE_INTERVAL_MS: '600000' },
    { keys: [{ key: A, credits: false }, { key: B }] },
  );
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits' });

  await stack.orche.probeNow();
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits', probe: { ok: true, limit_remaining: 0 } });

  stack.sim.updateKey(A, { credits: true });
  const summary = await stack.orche.probeNow();
  expect(summary.reactivated).toEqual([keyId(A)]);
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'active', reason: null, probe: { limit_remaining: null } });
  await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect(callsBy(stack.sim, A).map((c) => c.status)).toEqual([402, 200]);
});

test('a key disabled by hand is never re-enabled by a probe; a probe that gets no answer changes nothing', async () => {
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, ORCHE_ADMIN_TOKEN: 'admin-token-123', ORCHE_PROBE_INTERVAL_MS: '600000' },
    { keys: [{ key: A }, { key: B }] },
  );
  await stack.http.post(`/api/keys/${keyId(A)}/disable`).set('Authorization', 'Bearer admin-token-123').expect(200);
  await stack.orche.probeNow();
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'manual' });

  await stack.sim.close(); // upstream gone
  const summary = await stack.orche.probeNow();
  expect(summary.failed.sort()).toEqual([keyId(A), keyId(B)].sort());
  const after = await keys(stack);
  expect(after[keyId(B)]).toMatchObject({ state: 'active', probe: { ok: false, status: null } });
});

test('the interval probes again without being asked (ORCHE_PROBE_INTERVAL_MS)', async () => {
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, ORCHE_PROBE_INTERVAL_MS: '50' },
    { keys: [{ key: A }, { key: B, credits: false }] },
  );
  await stack.orche.start();
  expect((await keys(stack))[keyId(B)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits' });
  stack.sim.updateKey(B, { credits: true });
  const deadline = Date.now() + 2000;
  while ((await keys(stack))[keyId(B)].state !== 'active') {
    if (Date.now() > deadline) throw new Error('the interval did not probe again within 2 s');
    await new Promise((r) => setTimeout(r, 20));
  }
});
