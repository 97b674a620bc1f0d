/**
 * Learned limits over HTTP (docs/design.md#the-outcome-table): the simulator's first free-models-per-min 429 teaches the
 * account's limit, and orche stops at it from then on — on memory, snapshot and Redis.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Env } from '../../../config';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';
import { RedisStore } from '../../../providers/store/redis';

/** A Redis store must be connected before the test: until then orche serves from its local state. */
async function storeUp(s: Stack): Promise<void> {
  const store = s.orche.ctx.pool.store;
  if (store instanceof RedisStore) expect(await store.connected()).toBe(true);
}

const K1 = 'sk-or-v1-learned-key-one-0001';
const K2 = 'sk-or-v1-learned-key-two-0002';
const MODEL = 'z-ai/glm-4.5:free';
// 12:30:10, on a 10 s boundary: the simulator's compressed windows are [T0, T0+10 s), …
const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);
const W = 10_000;

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

function env(extra: Env): Env {
  return { PROVIDER_GLM45_MODEL: MODEL, PROVIDER_GLM45_API_KEY: `user_acc:${K1}`, PROVIDER_GLM45_BACKUP_KEYS: `user_acc:${K2}`, ORCHE_MAX_WAIT_MS: '0', ...extra };
}

async function chat(s: Stack): Promise<number> {
  return (await s.http.post('/v1/chat/completions').send({ model: 'glm45', messages: hi })).status;
}

const upstream429 = (s: Stack) => s.sim.calls.filter((c) => c.status === 429).length;

function learnedLimitStopsTheNextCall(storeEnv: () => Env): void {
  test('one 429 teaches the account limit; the next window is served up to it and never past it', async () => {
    let now = T0 + 3_000;
    stack = await startStack(env(storeEnv()), {
      now: () => now, windowMs: W, accounts: [{ id: 'user_acc', freeRpm: 3, freeRpd: 1000 }], keys: [{ key: K1, account: 'user_acc' }, { key: K2, account: 'user_acc' }],
    }, { now: () => now });
    const s = stack;
    await storeUp(s);
    expect([await chat(s), await chat(s), await chat(s), await chat(s)]).toEqual([200, 200, 200, 429]);
    expect(upstream429(s)).toBe(1);

    const status = await s.http.get('/api/key-status/glm45');
    const k1 = status.body.keys[0];
    expect(k1.learned_limits).toEqual([
      { scope: 'account_free', limit: 3, window_ms: W, used: expect.any(Number), source: '429', learned_at: new Date(T0 + 3_000).toISOString(), expires_at: new Date(T0 + 3_000 + 86_400_000).toISOString() },
    ]);

    now = T0 + W + 1;
    expect([await chat(s), await chat(s), await chat(s), await chat(s), await chat(s)]).toEqual([200, 200, 200, 429, 429]);
    // The fourth and fifth were refused by orche itself: upstream saw no second 429.
    expect(upstream429(s)).toBe(1);
    expect(s.sim.calls).toHaveLength(7);
    now = T0 + 2 * W;
    expect(await chat(s)).toBe(200);
    expect(upstream429(s)).toBe(1);
    expect(s.orche.ctx.pool.store.health().ok).toBe(true);
  });

  // docs/design.md#learned-limits: learned windows are anchored at the resets the upstream sends, on whole multiples or
  // not. A reset off every boundary used to teach nothing: each window cost another upstream 429.
  test('windows that open at the first call (resets off every boundary): learned from the reset, counted from it, and never held past it', async () => {
    let now = T0 + 3_123;
    stack = await startStack(env({ ...storeEnv(), ORCHE_MINUTE_MS: String(W) }), {
      now: () => now, windowMs: W, windowMode: 'first-call', accounts: [{ id: 'user_acc', freeRpm: 3, freeRpd: 1000 }], keys: [{ key: K1, account: 'user_acc' }, { key: K2, account: 'user_acc' }],
    }, { now: () => now });
    const s = stack;
    await storeUp(s);
    // The simulator's window opens at the first call: [T0 + 3.123 s, T0 + 13.123 s).
    expect([await chat(s), await chat(s), await chat(s), await chat(s)]).toEqual([200, 200, 200, 429]);
    const reset = T0 + 3_123 + W;
    expect(upstream429(s)).toBe(1);
    // Just before the reset orche holds; at the reset itself (not at a whole multiple) it serves.
    now = reset - 1;
    expect(await chat(s)).toBe(429);
    now = reset;
    expect([await chat(s), await chat(s), await chat(s), await chat(s)]).toEqual([200, 200, 200, 429]);
    // The fourth was refused by orche itself: it counted the window the upstream opened at the reset.
    expect(upstream429(s)).toBe(1);
    now = reset + W;
    expect(await chat(s)).toBe(200);
    expect(upstream429(s)).toBe(1);
  });

  // docs/design.md#blame-on-evidence: a call the upstream admitted counts whatever it answered. The 502 used to be refunded;
  // the upstream had counted it, so orche sent one call too many and met a second upstream 429.
  test('a 5xx the upstream admitted counts against the learned limit: orche refuses the next call itself, no second upstream 429', async () => {
    let now = T0 + 3_000;
    stack = await startStack(env(storeEnv()), {
      now: () => now, windowMs: W, accounts: [{ id: 'user_acc', freeRpm: 2, freeRpd: 1000 }], keys: [{ key: K1, account: 'user_acc' }, { key: K2, account: 'user_acc' }],
    }, { now: () => now });
    const s = stack;
    await storeUp(s);
    expect([await chat(s), await chat(s), await chat(s)]).toEqual([200, 200, 429]);
    now = T0 + W + 1;
    s.sim.addRule({ type: 'status', status: 502, times: 1 });
    // 502 (counted upstream) then a retry on the other key: served; the window's 2 calls are spent.
    expect([await chat(s), await chat(s)]).toEqual([200, 429]);
    expect(s.sim.calls.slice(-2).map((c) => c.status)).toEqual([502, 200]);
    expect(upstream429(s)).toBe(1);
    // The next window serves again.
    now = T0 + 2 * W;
    expect(await chat(s)).toBe(200);
    expect(upstream429(s)).toBe(1);
  });
}

describe('learned limits: memory store', () => learnedLimitStopsTheNextCall(() => ({})));
describe('learned limits: snapshot store', () => learnedLimitStopsTheNextCall(() => ({ ORCHE_STATE_FILE: join(mkdtempSync(join(tmpdir(), 'orche-learned-')), 'state.json') })));
describeRedis('learned limits: Redis store', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropPrefix(p);
  });
  learnedLimitStopsTheNextCall(() => {
    const prefix = uniquePrefix('learned');
    prefixes.push(prefix);
    return { REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
  });
});
