/**
 * Key probing over OpenRouter's GET /key (simulator): rejected keys are disabled before any request;
 * a key whose own credit limit is spent is disabled (key_limit) and comes back when GET /key shows
 * room; GET /key cannot see the account's balance, so keys a 402 disabled stay disabled.
 */
import { keyId } from '../../../providers/keys/keys';
import { callsBy, hi, startStack, type Stack } from '../../helpers/stack';

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

test('a 402 for the account\'s credits: the next probe leaves every key of the account disabled (GET /key shows only a key\'s own limit), so no call is wasted on them; an admin reactivation brings a key back', async () => {
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: `broke:${A}`, PROVIDER_KIMI_BACKUP_KEYS: `broke:${B},${C}`, PROVIDER_KIMI_STRATEGY: 'failover', ORCHE_ADMIN_TOKEN: 'admin-token-123', ORCHE_PROBE_INTERVAL_MS: '600000' },
    { keys: [{ key: A, account: 'broke' }, { key: B, account: 'broke' }, { key: C, account: 'paid' }] },
  );
  stack.sim.addRule({ match: { account: 'broke' }, type: 'no-credits' });
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits' });
  expect((await keys(stack))[keyId(B)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits' });

  // GET /key answers 200 with no limit of the key's own: it says nothing of the account's balance.
  const summary = await stack.orche.probeNow();
  expect(summary.reactivated).toEqual([]);
  const after = await keys(stack);
  expect(after[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits', probe: { ok: true, limit: null, limit_remaining: null } });
  expect(after[keyId(B)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits' });
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  expect(callsBy(stack.sim, A).map((c) => c.status)).toEqual([402]);
  expect(callsBy(stack.sim, B)).toHaveLength(0);

  // Credits bought: the admin says so.
  stack.sim.clearRules();
  await stack.http.post(`/api/keys/${keyId(A)}/reactivate`).set('Authorization', 'Bearer admin-token-123').expect(200);
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(A));
  expect(callsBy(stack.sim, A).map((c) => c.status)).toEqual([402, 200]);
});

test('a key\'s own credit limit spent: the probe disables it as key_limit; a key disabled as key_limit (by a probe or a 403) is enabled again once GET /key shows room', async () => {
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover', ORCHE_PROBE_INTERVAL_MS: '600000' },
    { keys: [{ key: A, keyLimit: { limit: 10, remaining: 0 } }, { key: B }] },
  );
  await stack.orche.start();
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'key_limit', probe: { limit: 10, limit_remaining: 0 } });
  expect((await keys(stack))[keyId(B)].state).toBe('active');

  stack.sim.updateKey(A, { keyLimit: { limit: 20, remaining: 10 } });
  expect((await stack.orche.probeNow()).reactivated).toEqual([keyId(A)]);
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(A));

  // Spent again between probes: the call's 403 "Key limit exceeded (total limit)" disables it (key_limit).
  stack.sim.updateKey(A, { keyLimit: { limit: 20, remaining: 0 } });
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(B));
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'key_limit' });
  expect((await stack.orche.probeNow()).reactivated).toEqual([]);
  expect((await keys(stack))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'key_limit' });

  // The limit removed: no limit of its own any more.
  stack.sim.updateKey(A, { keyLimit: undefined });
  expect((await stack.orche.probeNow()).reactivated).toEqual([keyId(A)]);
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).body.key_id).toBe(keyId(A));
  expect(callsBy(stack.sim, A).map((c) => c.status)).toEqual([200, 403, 200]);
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
    { keys: [{ key: A }, { key: B, keyLimit: { limit: 10, remaining: 0 } }] },
  );
  await stack.orche.start();
  expect((await keys(stack))[keyId(B)]).toMatchObject({ state: 'disabled', reason: 'key_limit' });
  stack.sim.updateKey(B, { keyLimit: { limit: 10, remaining: 5 } });
  const deadline = Date.now() + 2000;
  while ((await keys(stack))[keyId(B)].state !== 'active') {
    if (Date.now() > deadline) throw new Error('the interval did not probe again within 2 s');
    await new Promise((r) => setTimeout(r, 20));
  }
});
