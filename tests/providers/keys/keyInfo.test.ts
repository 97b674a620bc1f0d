/**
 * What GET /key says is used (docs/design.md#what-get-key-is-used-for), over HTTP against the simulator, whose GET /key answers in
 * OpenRouter's current shape (API reference, openrouter.ai/docs/api/api-reference/api-keys/get-current-key,
 * 2026: creator_user_id, expires_at, rate_limit {requests, interval, note: "This field is deprecated
 * and safe to ignore."}; live answers add free_model_daily_requests {limit, remaining, used}):
 * - the deprecated rate_limit is shown as reported and never enforced;
 * - free_model_daily_requests seeds the account's :free day, and remaining 0 cools it until 00:00 UTC;
 * - creator_user_id groups undeclared keys into one account before any 429 (a declared account wins);
 * - expires_at past disables the key (expired); within a day /status and the alert webhook warn.
 * State-bearing rules run on the memory, snapshot and Redis stores.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Env } from '../../../config';
import { keyId } from '../../../providers/keys/keys';
import { RedisStore } from '../../../providers/store/redis';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';

const K1 = 'sk-or-v1-keyinfo-one-00000001';
const K2 = 'sk-or-v1-keyinfo-two-00000002';
const K3 = 'sk-or-v1-keyinfo-three-000003';
const K4 = 'sk-or-v1-keyinfo-four-0000004';
const FREE = 'z-ai/glm-4.5:free';
// 12:30:10 UTC; the UTC day ends 11 h 29 min 50 s later.
const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);
const MIDNIGHT = Date.UTC(2026, 10, 23);

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const PROBED = { ORCHE_PROBE_INTERVAL_MS: '600000', ORCHE_MAX_WAIT_MS: '0', PROVIDER_GLM45_MODEL: FREE };

async function started(env: Env, sim: Parameters<typeof startStack>[1], now?: () => number): Promise<Stack> {
  stack = await startStack(env, { ...sim, ...(now ? { now } : {}) }, now ? { now } : {});
  const store = stack.orche.ctx.pool.store;
  if (store instanceof RedisStore) expect(await store.connected()).toBe(true);
  await stack.orche.start();
  return stack;
}

const chat = async (s: Stack) => s.http.post('/api/chat').send({ provider: 'glm45', messages: hi });
const upstream429 = (s: Stack) => s.sim.calls.filter((c) => c.status === 429).length;

function stateRules(storeEnv: () => Env): void {
  // Issue 16: the key served 3 calls and then answered 429 "retry in 1498 s" for 25 minutes,
  // while OpenRouter would have served them all.
  test('the deprecated rate_limit (3 per 1h) is shown as reported and never enforced: every call is served', async () => {
    const s = await started({ ...storeEnv(), ...PROBED, PROVIDER_GLM45_MODEL: 'z-ai/glm-4.5', PROVIDER_GLM45_API_KEY: K1 }, { keys: [{ key: K1, rateLimit: { requests: 3, interval: '1h' } }] });
    const key = (await s.http.get('/api/key-status/glm45')).body.keys[0];
    expect(key.probe.rate_limit).toEqual({ requests: 3, interval: '1h', note: 'This field is deprecated and safe to ignore.' });
    expect(key.learned_limits).toEqual([]);
    for (let i = 0; i < 6; i++) expect((await chat(s)).status).toBe(200);
    expect(s.sim.calls.map((c) => c.status)).toEqual([200, 200, 200, 200, 200, 200]);
  });

  test('48 of the account\'s 50 :free calls of the day used: 2 calls are served, then orche answers 429 itself until 00:00 UTC; no upstream 429', async () => {
    const now = () => T0;
    const s = await started({ ...storeEnv(), ...PROBED, PROVIDER_GLM45_API_KEY: K1 }, { accounts: [{ id: 'user_day', freeRpm: 20, freeRpd: 50, usedToday: 48 }], keys: [{ key: K1, account: 'user_day' }] }, now);
    expect((await s.http.get('/api/key-status/glm45')).body.keys[0].probe.free_model_daily_requests).toEqual({ limit: 50, remaining: 2, used: 48 });
    expect([(await chat(s)).status, (await chat(s)).status]).toEqual([200, 200]);
    for (let i = 0; i < 3; i++) {
      const refused = await chat(s);
      expect(refused.status).toBe(429);
      expect(refused.body.error.type).toBe('all_keys_rate_limited');
      expect(Number(refused.headers['retry-after'])).toBe((MIDNIGHT - T0) / 1000);
    }
    expect(s.sim.calls.map((c) => c.status)).toEqual([200, 200]);
    expect(upstream429(s)).toBe(0);
  });

  test('remaining 0 at the probe: the account\'s :free models cool until 00:00 UTC without a call', async () => {
    const now = () => T0;
    const s = await started({ ...storeEnv(), ...PROBED, PROVIDER_GLM45_API_KEY: K1 }, { accounts: [{ id: 'user_spent', freeRpd: 50, usedToday: 50 }], keys: [{ key: K1, account: 'user_spent' }] }, now);
    const key = (await s.http.get('/api/key-status/glm45')).body.keys[0];
    expect(key).toMatchObject({ state: 'cooling', reason: 'free_model_daily_requests', cooldown_until: MIDNIGHT });
    const refused = await chat(s);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBe((MIDNIGHT - T0) / 1000);
    expect(s.sim.calls).toHaveLength(0);
  });

  // Issue 16: three undeclared keys of one account cost one upstream 429 per key.
  test('three undeclared keys of one account (same creator_user_id), 2 calls a minute: at most 1 upstream 429; a declared account keeps its own', async () => {
    const s = await started(
      { ...storeEnv(), ...PROBED, PROVIDER_GLM45_API_KEY: K1, PROVIDER_GLM45_BACKUP_KEYS: `${K2},${K3},mine:${K4}`, PROVIDER_GLM45_STRATEGY: 'failover' },
      { accounts: [{ id: 'user_team', freeRpm: 2, freeRpd: 1000 }, { id: 'user_solo', freeRpm: 20 }], keys: [{ key: K1, account: 'user_team' }, { key: K2, account: 'user_team' }, { key: K3, account: 'user_team' }, { key: K4, account: 'user_solo' }] },
    );
    const accounts = Object.fromEntries((await s.orche.ctx.pool.store.inspect([K1, K2, K3, K4].map((k) => s.orche.ctx.pool.get('glm45')!.views.get(keyId(k))!), Date.now())).map((v, i) => [i, v.account]));
    expect(accounts).toEqual({ 0: 'user_team', 1: 'user_team', 2: 'user_team', 3: 'mine' });
    // Failover: K1, K2, K3 in turn before K4. The account's 2 calls, one 429 that cools the account, then K4.
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push((await chat(s)).body.key_id);
    expect(answers.slice(0, 2)).toEqual([keyId(K1), keyId(K1)]);
    expect(answers.slice(2)).toEqual([keyId(K4), keyId(K4), keyId(K4), keyId(K4)]);
    expect(upstream429(s)).toBeLessThanOrEqual(1);
    expect(s.sim.calls.filter((c) => c.account === 'user_team' && c.status === 429)).toHaveLength(1);
  });

  test('expires_at in the past disables the key (expired) before any request; a new expiry brings it back', async () => {
    const s = await started(
      { ...storeEnv(), ...PROBED, PROVIDER_GLM45_MODEL: 'z-ai/glm-4.5', PROVIDER_GLM45_API_KEY: K1, PROVIDER_GLM45_BACKUP_KEYS: K2 },
      { keys: [{ key: K1, expiresAt: new Date(Date.now() - 60_000).toISOString() }, { key: K2 }] },
    );
    const keys = (await s.http.get('/api/key-status/glm45')).body.keys;
    expect(keys[0]).toMatchObject({ id: keyId(K1), state: 'disabled', reason: 'expired' });
    for (let i = 0; i < 3; i++) expect((await chat(s)).body.key_id).toBe(keyId(K2));
    expect(s.sim.calls.filter((c) => c.key === K1)).toHaveLength(0);
    s.sim.updateKey(K1, { expiresAt: new Date(Date.now() + 30 * 86_400_000).toISOString() });
    expect((await s.orche.probeNow()).reactivated).toEqual([keyId(K1)]);
    expect((await s.http.get('/api/key-status/glm45')).body.keys[0].state).toBe('active');
  });
}

describe('GET /key: memory store', () => stateRules(() => ({})));
describe('GET /key: snapshot store', () => stateRules(() => ({ ORCHE_STATE_FILE: join(mkdtempSync(join(tmpdir(), 'orche-keyinfo-')), 'state.json') })));
describeRedis('GET /key: Redis store', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropPrefix(p);
  });
  stateRules(() => {
    const prefix = uniquePrefix('keyinfo');
    prefixes.push(prefix);
    return { REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
  });
});

test('a key expiring within a day: /status lists it, the alert webhook and the log warn; a later one is not listed', async () => {
  const alerts: Array<Record<string, unknown>> = [];
  const receiver: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      alerts.push(JSON.parse(raw));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  try {
    const soon = new Date(Date.now() + 6 * 3_600_000).toISOString();
    const s = await started(
      { ...PROBED, PROVIDER_GLM45_MODEL: 'z-ai/glm-4.5', PROVIDER_GLM45_API_KEY: K1, PROVIDER_GLM45_BACKUP_KEYS: K2, ORCHE_ALERT_WEBHOOK: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook` },
      { keys: [{ key: K1, expiresAt: soon }, { key: K2, expiresAt: new Date(Date.now() + 3 * 86_400_000).toISOString() }] },
    );
    const status = (await s.http.get('/status')).body;
    expect(status.keys_expiring).toEqual([{ key_id: keyId(K1), providers: ['glm45'], expires_at: soon, expires_in_ms: expect.any(Number) }]);
    expect(status.keys_expiring[0].expires_in_ms).toBeGreaterThan(5 * 3_600_000);
    const deadline = Date.now() + 2000;
    while (!alerts.some((a) => a.kind === 'key_expiring')) {
      if (Date.now() > deadline) throw new Error('no key_expiring alert within 2 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(alerts.filter((a) => a.kind === 'key_expiring')).toEqual([expect.objectContaining({ kind: 'key_expiring', provider: 'glm45', key_id: keyId(K1) })]);
    expect(s.logs.parsed().filter((l) => l.message === 'key expires within a day')).toEqual([expect.objectContaining({ key_id: keyId(K1), expires_at: soon })]);
    // Still serving: a warning, not a disable.
    expect((await chat(s)).status).toBe(200);
  } finally {
    await new Promise((r) => receiver.close(() => r(undefined)));
  }
});
