/**
 * Shared fixtures for the key pool and the dispatcher, and the key pool suite itself, written against
 * the StateStore interface and the KeyPool API only, so that every store (memory, snapshot, Redis)
 * can run the same rules of docs/design.md#the-requests-path with a fake clock.
 */
import type { KeyConfig, KeyRole, ProviderConfig, RotationConfig } from '../../config';
import { KeyPool, type PoolOptions, type ProviderRuntime } from '../../providers/keys/keyPool';
import type { PoolEvents } from '../../providers/keys/events';
import { keyId, keyPreview } from '../../providers/keys/keys';
import { classifyResponse, type CoolScope, NO_HINT_HOLD_MS, type Outcome, type RateInfo } from '../../providers/limits/rateLimit';
import type { KeyView, PickResult, StateStore } from '../../providers/store/types';

/** A fixed clock 10 s into a minute, so "the next whole minute" is exact. */
export const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);
export const NEXT_MINUTE = Date.UTC(2026, 10, 22, 12, 31, 0);
export const NEXT_MIDNIGHT = Date.UTC(2026, 10, 23, 0, 0, 0);

export const FREE_MODEL = 'moonshotai/kimi-k2:free';
export const FREE_MODEL_2 = 'z-ai/glm-4.5-air:free';
export const PAID_MODEL = 'moonshotai/kimi-k2';
export const PAID_MODEL_2 = 'z-ai/glm-4.5';

export const POOL_OPTIONS: PoolOptions = {
  cooldownMs: 60_000,
  maxCooldownMs: 900_000,
  trialTtlMs: 60_000,
  congestionMs: NO_HINT_HOLD_MS,
  edgeMs: NO_HINT_HOLD_MS,
};

export const ROTATION: RotationConfig = {
  cooldownMs: 60_000,
  maxCooldownMs: 900_000,
  maxAttempts: 4,
  maxWaitMs: 3_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 10_000,
  requestTimeoutMs: 60_000,
  deadlineMs: 120_000,
};

/** A fake key (`sk-or-v1-test-<name>`), its role, and its account (default: its own). */
export function key(name: string, opts: { role?: KeyRole; account?: string } = {}): KeyConfig {
  const secret = `sk-or-v1-test-${name}`;
  const id = keyId(secret);
  return { id, key: secret, preview: keyPreview(secret), role: opts.role ?? 'backup', account: opts.account ?? `key:${id}` };
}

/** A list of keys: the first is the primary, the rest backups (unless a role is given). */
export function keys(...names: string[]): KeyConfig[] {
  return names.map((n, i) => key(n, { role: i === 0 ? 'primary' : 'backup' }));
}

export function provider(slug: string, ks: KeyConfig[], extra: Partial<ProviderConfig> = {}): ProviderConfig {
  return {
    id: slug.toUpperCase(),
    slug,
    name: slug,
    model: PAID_MODEL,
    strategy: 'round-robin',
    keys: ks,
    ...extra,
  };
}

/** Outcomes as the classifier would produce them. */
export const outcome = {
  success(rate?: RateInfo, userId?: string, body: unknown = { choices: [{ message: { role: 'assistant', content: 'ok' } }], usage: { total_tokens: 7 } }): Outcome {
    return { kind: 'success', status: 200, body, ...(rate ? { rate } : {}), ...(userId ? { userId } : {}) };
  },
  cool(scope: CoolScope, until?: number, reason = 'rate_limited', userId?: string): Outcome {
    return { kind: 'cool', status: 429, scope, until, reason, message: 'Rate limit exceeded', ...(userId ? { userId } : {}) };
  },
  congested(until?: number, reason = 'upstream_rate_limited'): Outcome {
    return { kind: 'congested', status: 429, until, reason, message: 'model is temporarily rate-limited upstream' };
  },
  disable(reason: 'invalid_key' | 'insufficient_credits' = 'invalid_key'): Outcome {
    return { kind: 'disable', status: reason === 'invalid_key' ? 401 : 402, reason, message: 'No auth credentials found' };
  },
  retry(status = 502): Outcome {
    return { kind: 'retry', status, reason: `upstream_${status}`, message: 'Provider returned error' };
  },
  clientError(status = 400, reason = `upstream_${status}`): Outcome {
    return { kind: 'client_error', status, reason, message: 'bad request', body: { error: { code: status, message: 'bad request' } } };
  },
  unservable(status = 404, reason = 'model_unavailable'): Outcome {
    return { kind: 'unservable', status, reason, message: 'No endpoints found', body: undefined };
  },
};

type Recorded = { [E in keyof PoolEvents]: PoolEvents[E][] };

/** Every event the pool announces, by name, in order. */
export function recordEvents(pool: KeyPool): Recorded {
  const rec: Recorded = { rotated: [], cooled: [], disabled: [], reactivated: [], recovered: [], congested: [], edge: [], account_learned: [], key_expiring: [], limit_learned: [], outcome: [], usage: [] };
  for (const name of Object.keys(rec) as Array<keyof PoolEvents>) {
    pool.events.on(name, (payload) => (rec[name] as unknown[]).push(payload));
  }
  return rec;
}

/** keyId → fixture name (`a`, `b`, …), for readable sequences. */
export function namer(...ks: KeyConfig[]): (id: string | null) => string | null {
  const byId = new Map(ks.map((k) => [k.id, k.key.replace('sk-or-v1-test-', '')]));
  return (id) => (id === null ? null : byId.get(id) ?? `?${id}`);
}

export type StoreFactory = () => Promise<StateStore> | StateStore;

/**
 * The key pool suite (docs/design.md#picking-a-key: selection, cooldowns, probes, accounts, budgets, events, statuses),
 * over any StateStore. Only the StateStore interface and the KeyPool API are used.
 */
export function describeKeyPoolSuite(name: string, makeStore: StoreFactory, cleanup?: (s: StateStore) => Promise<void>): void {
  describe(`KeyPool over ${name}`, () => {
    let store: StateStore;
    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      if (cleanup) await cleanup(store);
      else await store.close();
    });

    function build(providers: ProviderConfig[], options: Partial<PoolOptions> = {}) {
      const pool = new KeyPool(providers, store, { ...POOL_OPTIONS, ...options });
      const rt = (slug: string): ProviderRuntime => {
        const r = pool.get(slug);
        if (!r) throw new Error(`no provider ${slug}`);
        return r;
      };
      return { pool, rt, events: recordEvents(pool) };
    }

    async function pickNames(pool: KeyPool, rt: ProviderRuntime, n: number, now: number, name: (id: string | null) => string | null): Promise<Array<string | null>> {
      const out: Array<string | null> = [];
      for (let i = 0; i < n; i++) out.push(name((await pool.pick(rt, now)).keyId));
      return out;
    }

    const noKey = (r: PickResult) => (r.keyId === null ? { keyId: null, retryAt: r.retryAt, reason: r.reason } : { keyId: r.keyId });

    // docs/design.md#learned-limits: the upstream counts what it admitted. A 502 used to be refunded: the upstream had
    // counted it, so the refund bought the next 429 of the window.
    test('a reported 429 with X-RateLimit-Limit teaches the limit; a 502 or a timeout the upstream admitted still counts; a 429 it refused itself is given back', async () => {
      const ks = [key('a', { account: 'acc' })];
      const n = namer(...ks);
      const { pool, rt, events } = build([provider('kimi', ks, { model: FREE_MODEL })]);
      const kimi = rt('kimi');
      const W = Date.UTC(2026, 10, 22, 12, 30, 20); // T0 + 10 s: the reset of a 10 s window
      expect(await pickNames(pool, kimi, 1, T0, n)).toEqual(['a']);
      const limited: Outcome = { ...outcome.cool('account_free', W, 'free-models-per-min'), rate: { limit: 2, remaining: 0, resetAt: W } };
      await pool.report(kimi, ks[0].id, limited, 5, T0 + 5);
      expect(events.limit_learned).toEqual([{ at: T0 + 5, provider: 'kimi', keyId: ks[0].id, scope: 'account_free', limit: 2, windowMs: 10_000 }]);
      // The next window: the trial call, then one more, then the learned limit holds.
      expect(await pickNames(pool, kimi, 1, W, n)).toEqual(['a']);
      await pool.report(kimi, ks[0].id, outcome.success(), 1, W + 1);
      expect(await pickNames(pool, kimi, 2, W + 2, n)).toEqual(['a', null]);
      // The pick of each call counted the learned limit (the dispatcher passes its pick on).
      await pool.report(kimi, ks[0].id, outcome.retry(502), 1, W + 3, { trial: false, learned: true });
      expect(await pickNames(pool, kimi, 2, W + 4, n)).toEqual([null, null]);
      await pool.report(kimi, ks[0].id, { kind: 'retry', status: 504, reason: 'timeout', message: 'timed out' }, 3, W + 8, { trial: false, learned: true });
      expect(await pickNames(pool, kimi, 1, W + 9, n)).toEqual([null]);
      const [status] = await pool.keyStatuses(kimi, W + 9);
      expect(status.learned_limits).toMatchObject([{ scope: 'account_free', limit: 2, window_ms: 10_000, used: 2, source: '429' }]);
      // The upstream's own 429 (a per-key cap until W + 5 s) refused the call: it counts no more.
      await pool.report(kimi, ks[0].id, outcome.cool('key', W + 5_000), 1, W + 10, { trial: false, learned: true });
      const [after] = await pool.keyStatuses(kimi, W + 10);
      expect(after.learned_limits).toMatchObject([{ used: 1 }]);
      expect(await pickNames(pool, kimi, 1, W + 5_000, n)).toEqual(['a']);
    });

    test('round-robin spreads evenly: 3 keys, 9 picks → each key exactly 3, in turn', async () => {
      const ks = keys('a', 'b', 'c');
      const { pool, rt } = build([provider('kimi', ks)]);
      const seq = await pickNames(pool, rt('kimi'), 9, T0, namer(...ks));
      expect(seq).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
    });

    test('failover: the primary until it cools, then backups in order, and the primary again once its cooldown ends and its probe succeeds', async () => {
      const ks = keys('a', 'b', 'c');
      const [a, b] = ks;
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks, { strategy: 'failover' })]);
      const p = rt('kimi');
      expect(await pickNames(pool, p, 3, T0, n)).toEqual(['a', 'a', 'a']);
      await pool.report(p, a.id, outcome.cool('key', T0 + 10_000), 10, T0);
      expect(await pickNames(pool, p, 2, T0 + 1, n)).toEqual(['b', 'b']);
      await pool.report(p, b.id, outcome.cool('key', T0 + 20_000), 10, T0 + 1);
      expect(await pickNames(pool, p, 2, T0 + 2, n)).toEqual(['c', 'c']);
      // A's cooldown ends: it gets the next request, as a probe; B is still cooling, so the one after goes to C.
      const probe = await pool.pick(p, T0 + 10_000);
      expect(probe).toEqual({ keyId: a.id, index: 0, trial: true });
      expect(n((await pool.pick(p, T0 + 10_001)).keyId)).toBe('c');
      await pool.report(p, a.id, outcome.success(), 100, T0 + 10_100, { trial: true });
      expect(await pickNames(pool, p, 3, T0 + 10_200, n)).toEqual(['a', 'a', 'a']);
      expect(await pool.pick(p, T0 + 10_300)).toEqual({ keyId: a.id, index: 0, trial: false });
    });

    test('reserve keys are used only when every other key is unusable', async () => {
      const a = key('a', { role: 'primary' });
      const b = key('b');
      const r = key('r', { role: 'reserve' });
      const n = namer(a, b, r);
      // The reserve key is listed first on purpose: its role, not its position, keeps it back.
      const { pool, rt } = build([provider('kimi', [r, a, b])]);
      const p = rt('kimi');
      expect(await pickNames(pool, p, 6, T0, n)).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
      await pool.report(p, a.id, outcome.cool('key', T0 + 30_000), 10, T0);
      expect(await pickNames(pool, p, 3, T0, n)).toEqual(['b', 'b', 'b']);
      await pool.report(p, b.id, outcome.disable('invalid_key'), 10, T0);
      expect(await pickNames(pool, p, 3, T0, n)).toEqual(['r', 'r', 'r']);
      const statuses = await pool.keyStatuses(p, T0);
      expect(statuses.map((s) => [n(s.id), s.role])).toEqual([
        ['a', 'primary'],
        ['b', 'backup'],
        ['r', 'reserve'],
      ]);
    });

    test('disabled keys are never picked, and a reactivated key is picked again', async () => {
      const ks = keys('a', 'b', 'c');
      const [, b] = ks;
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      await pool.report(p, b.id, outcome.disable('invalid_key'), 10, T0);
      const seq = await pickNames(pool, p, 8, T0, n);
      expect(seq).toEqual(['a', 'c', 'a', 'c', 'a', 'c', 'a', 'c']);
      // Long after any cooldown would have ended, B stays disabled.
      expect(await pickNames(pool, p, 4, T0 + 86_400_000, n)).not.toContain('b');
      await pool.setDisabled(b.id, null, T0);
      expect((await pickNames(pool, p, 3, T0 + 86_400_000, n)).sort()).toEqual(['a', 'b', 'c']);
    });

    test('concurrent picks (Promise.all of 30) land on different keys evenly: 10 per key', async () => {
      const ks = keys('a', 'b', 'c');
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      const results = await Promise.all(Array.from({ length: 30 }, () => pool.pick(p, T0)));
      const counts: Record<string, number> = {};
      for (const r of results) {
        const k = n(r.keyId) ?? 'none';
        counts[k] = (counts[k] ?? 0) + 1;
      }
      expect(counts).toEqual({ a: 10, b: 10, c: 10 });
    });

    test('cooling again never shortens a cooldown: cool to T+10s, then to T+5s → still T+10s', async () => {
      const ks = keys('a', 'b');
      const [a] = ks;
      const n = namer(...ks);
      const { pool, rt, events } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.cool('key', T0 + 10_000), 10, T0);
      await pool.report(p, a.id, outcome.cool('key', T0 + 5_000), 10, T0);
      expect(events.cooled.map((e) => e.until)).toEqual([T0 + 10_000, T0 + 10_000]);
      const [sa] = await pool.keyStatuses(p, T0 + 6_000);
      expect(sa.state).toBe('cooling');
      expect(sa.cooldown_until).toBe(T0 + 10_000);
      expect(sa.cooldown_remaining_ms).toBe(4_000);
      expect(await pickNames(pool, p, 3, T0 + 6_000, n)).toEqual(['b', 'b', 'b']);
    });

    test('default cooldown doubles on consecutive 429s of the same key (60s, 120s, 240s, capped at max) and resets after a success', async () => {
      const ks = keys('a', 'b');
      const [a] = ks;
      const { pool, rt, events } = build([provider('kimi', ks)], { cooldownMs: 60_000, maxCooldownMs: 300_000 });
      const p = rt('kimi');
      let t = T0;
      const durations: number[] = [];
      for (let i = 0; i < 5; i++) {
        await pool.report(p, a.id, outcome.cool('key'), 10, t);
        const until = events.cooled[events.cooled.length - 1].until;
        durations.push(until - t);
        t = until; // the next 429 comes when the key is tried again, at the end of its cooldown
      }
      expect(durations).toEqual([60_000, 120_000, 240_000, 300_000, 300_000]);
      await pool.report(p, a.id, outcome.success(), 10, t, { trial: true });
      await pool.report(p, a.id, outcome.cool('key'), 10, t + 1);
      expect(events.cooled[events.cooled.length - 1].until).toBe(t + 1 + 60_000);
    });

    test('a recovering key gets exactly one request (probe) after its cooldown; a second pick goes elsewhere; full share after the probe succeeds', async () => {
      const ks = keys('a', 'b');
      const [a] = ks;
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      expect(n((await pool.pick(p, T0)).keyId)).toBe('a');
      await pool.report(p, a.id, outcome.cool('key', T0 + 10_000), 10, T0);
      expect(await pickNames(pool, p, 2, T0 + 1, n)).toEqual(['b', 'b']);
      expect(await pool.pick(p, T0 + 10_000)).toEqual({ keyId: a.id, index: 0, trial: true });
      // While the probe is in flight, A gets nothing more.
      expect(await pickNames(pool, p, 4, T0 + 10_001, n)).toEqual(['b', 'b', 'b', 'b']);
      const [sa] = await pool.keyStatuses(p, T0 + 10_001);
      expect(sa.state).toBe('active');
      expect(sa.recovering).toBe(true);
      await pool.report(p, a.id, outcome.success(), 200, T0 + 10_200, { trial: true });
      expect(await pickNames(pool, p, 4, T0 + 10_300, n)).toEqual(['a', 'b', 'a', 'b']);
      const [after] = await pool.keyStatuses(p, T0 + 10_300);
      expect(after.recovering).toBe(false);
      expect(after.reason).toBeNull();
    });

    test('a probe that ends without a verdict (5xx) lets the next request probe', async () => {
      const ks = keys('a', 'b');
      const [a] = ks;
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      await pool.pick(p, T0);
      await pool.report(p, a.id, outcome.cool('key', T0 + 10_000), 10, T0);
      expect(n((await pool.pick(p, T0 + 1)).keyId)).toBe('b');
      expect(await pool.pick(p, T0 + 10_000)).toEqual({ keyId: a.id, index: 0, trial: true });
      expect(n((await pool.pick(p, T0 + 10_001)).keyId)).toBe('b');
      await pool.report(p, a.id, outcome.retry(502), 10, T0 + 10_002, { trial: true });
      expect(await pool.pick(p, T0 + 10_003)).toEqual({ keyId: a.id, index: 0, trial: true });
    });

    // Only the trial call ends its trial: a call picked before the key cooled, ending (5xx, client error)
    // while another request's trial call is in flight, used to end that hold and let a second trial in.
    test.each([
      ['5xx (retry)', outcome.retry(502)],
      ['client error', outcome.clientError(400)],
      ['unservable', outcome.unservable()],
    ])("a call that was no trial, ending with %s, leaves another request's trial hold in place", async (_name, result) => {
      const ks = keys('a', 'b');
      const [a] = ks;
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks, { strategy: 'failover' })]);
      const p = rt('kimi');
      expect(await pool.pick(p, T0)).toEqual({ keyId: a.id, index: 0, trial: false }); // call X, still in flight
      await pool.report(p, a.id, outcome.cool('key', T0 + 10_000), 10, T0);
      expect(n((await pool.pick(p, T0 + 1)).keyId)).toBe('b');
      expect(await pool.pick(p, T0 + 10_000)).toEqual({ keyId: a.id, index: 0, trial: true }); // call Y, the trial
      await pool.report(p, a.id, result, 10_002, T0 + 10_002); // X ends
      expect(n((await pool.pick(p, T0 + 10_003)).keyId)).toBe('b');
    });

    test('a refused call costs no refund round trip unless the pick counted a learned limit; an admitted one (5xx) is never refunded; no trial round trip unless it was a trial', async () => {
      const ks = keys('a');
      const [a] = ks;
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      const calls: string[] = [];
      for (const m of ['refund', 'endTrial'] as const) {
        const real = store[m].bind(store);
        store[m] = async (view: KeyView, at: number) => {
          calls.push(m);
          return real(view, at);
        };
      }
      const first = await pool.pick(p, T0);
      if (first.keyId === null) throw new Error('no key picked');
      await pool.report(p, a.id, outcome.retry(502), 10, T0 + 10, first);
      expect(calls).toEqual([]);
      // With a learned limit of the key (2 a minute): a 502 the upstream admitted keeps counting.
      await pool.learnFromProbe(p, a.id, 'key', 2, 60_000, T0 + 20);
      const second = await pool.pick(p, T0 + 30);
      if (second.keyId === null) throw new Error('no key picked');
      await pool.report(p, a.id, outcome.retry(502), 10, T0 + 40, second);
      expect(calls).toEqual([]);
      // A 429 the upstream refused itself (the key's own cap until T0 + 55) is given back.
      const third = await pool.pick(p, T0 + 42);
      if (third.keyId === null) throw new Error('no key picked');
      await pool.report(p, a.id, outcome.cool('key', T0 + 55), 3, T0 + 45, third);
      expect(calls).toEqual(['refund']);
      const [status] = await pool.keyStatuses(p, T0 + 46);
      expect(status.learned_limits).toMatchObject([{ limit: 2, used: 1 }]);
    });

    // docs/design.md#the-state-rules-table: the trial call's hold on its gates ends with the call, whatever its outcome. An account
    // gate held by a trial that answered 401 (or a key-level 429) used to lock the account's other keys
    // out for trialTtlMs (60 s).
    test.each([
      ['401 (disable)', outcome.disable('invalid_key')],
      ['key-level 429 (cool aimed at the key gate)', outcome.cool('key', T0 + 120_000)],
      ['success', outcome.success()],
      ['5xx (retry)', outcome.retry(502)],
      ['client error', outcome.clientError(400)],
      ['unservable', outcome.unservable()],
      ['congested', outcome.congested(NEXT_MINUTE - 30_000)],
    ])('a trial call that ends with %s frees its account gate: a sibling key of the account is usable at once', async (_name, result) => {
      const a = key('a', { role: 'primary', account: 'team' });
      const b = key('b', { account: 'team' });
      const n = namer(a, b);
      const { pool, rt } = build([provider('kimi', [a, b], { strategy: 'failover' })]);
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.cool('account', T0 + 10_000), 10, T0);
      expect(noKey(await pool.pick(p, T0 + 1))).toEqual({ keyId: null, retryAt: T0 + 10_000, reason: 'cooling' });
      expect(await pool.pick(p, T0 + 10_000)).toEqual({ keyId: a.id, index: 0, trial: true });
      await pool.report(p, a.id, result, 10, T0 + 10_050, { trial: true });
      // The congestion holds every key of the model by itself; the rule is about the account gate.
      const at = result.kind === 'congested' ? NEXT_MINUTE - 30_000 : T0 + 10_100;
      const next = await pool.pick(p, at);
      expect(n(next.keyId)).toBe(result.kind === 'disable' || result.kind === 'cool' ? 'b' : 'a');
    });

    test('account_free cooldown blocks every key of the account for every :free provider; other accounts and paid models keep serving', async () => {
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const a2 = key('a2', { account: 'team1' });
      const b = key('b', { account: 'team2' });
      const n = namer(a1, a2, b);
      const { pool, rt } = build([
        provider('kimi', [a1, a2, b], { model: FREE_MODEL }),
        provider('glm45', [a2, b], { model: FREE_MODEL_2 }),
        provider('qwen3', [a1, a2], { model: PAID_MODEL_2 }),
      ]);
      await pool.report(rt('kimi'), a1.id, outcome.cool('account_free', NEXT_MINUTE, 'free-models-per-min'), 10, T0);
      expect(await pickNames(pool, rt('kimi'), 4, T0 + 1, n)).toEqual(['b', 'b', 'b', 'b']);
      expect(await pickNames(pool, rt('glm45'), 3, T0 + 1, n)).toEqual(['b', 'b', 'b']);
      expect(await pickNames(pool, rt('qwen3'), 2, T0 + 1, n)).toEqual(['a1', 'a2']);
      const statuses = await pool.keyStatuses(rt('kimi'), T0 + 1);
      expect(statuses.map((s) => [n(s.id), s.state, s.reason, s.cooldown_remaining_ms])).toEqual([
        ['a1', 'cooling', 'free-models-per-min', NEXT_MINUTE - T0 - 1],
        ['a2', 'cooling', 'free-models-per-min', NEXT_MINUTE - T0 - 1],
        ['b', 'active', null, 0],
      ]);
      // At the reset one key of team1 probes for the whole account.
      const probe = await pool.pick(rt('glm45'), NEXT_MINUTE);
      expect(probe).toEqual({ keyId: a2.id, index: 0, trial: true });
    });

    test('account learned from user_id: two keys with different configured accounts that report the same user_id are one account afterwards', async () => {
      const x = key('x', { role: 'primary', account: 'acct-x' });
      const y = key('y', { account: 'acct-y' });
      const z = key('z', { account: 'acct-z' });
      const n = namer(x, y, z);
      const { pool, rt, events } = build([provider('kimi', [x, y, z], { model: FREE_MODEL })]);
      const p = rt('kimi');
      await pool.report(p, x.id, outcome.success(undefined, 'user_same'), 10, T0);
      await pool.report(p, y.id, outcome.success(undefined, 'user_same'), 10, T0);
      expect(events.account_learned.map((e) => [n(e.keyId), e.account])).toEqual([
        ['x', 'user_same'],
        ['y', 'user_same'],
      ]);
      await pool.report(p, x.id, outcome.cool('account_free', NEXT_MINUTE, 'free-models-per-min'), 10, T0 + 1);
      expect(await pickNames(pool, p, 4, T0 + 2, n)).toEqual(['z', 'z', 'z', 'z']);
      const statuses = await pool.keyStatuses(p, T0 + 2);
      expect(statuses.map((s) => [n(s.id), s.account, s.state])).toEqual([
        ['x', 'user_same', 'cooling'],
        ['y', 'user_same', 'cooling'],
        ['z', 'acct-z', 'active'],
      ]);
    });

    test('account_model cools only that model for that account', async () => {
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const a2 = key('a2', { account: 'team1' });
      const b = key('b', { account: 'team2' });
      const n = namer(a1, a2, b);
      const { pool, rt } = build([
        provider('kimi', [a1, a2, b], { model: PAID_MODEL }),
        provider('glm45', [a1, a2], { model: PAID_MODEL_2 }),
      ]);
      await pool.report(rt('kimi'), a1.id, outcome.cool('account_model', T0 + 30_000, 'model_cap'), 10, T0);
      expect(await pickNames(pool, rt('kimi'), 3, T0 + 1, n)).toEqual(['b', 'b', 'b']);
      expect(await pickNames(pool, rt('glm45'), 4, T0 + 1, n)).toEqual(['a1', 'a2', 'a1', 'a2']);
      const statuses = await pool.keyStatuses(rt('kimi'), T0 + 1);
      expect(statuses.map((s) => [n(s.id), s.state, s.reason])).toEqual([
        ['a1', 'cooling', 'model_cap'],
        ['a2', 'cooling', 'model_cap'],
        ['b', 'active', null],
      ]);
      expect((await pool.keyStatuses(rt('glm45'), T0 + 1)).map((s) => s.state)).toEqual(['active', 'active']);
    });

    test("congested model: pick returns reason 'congested' with retryAt, and no key cools", async () => {
      const ks = keys('a', 'b');
      const [a] = ks;
      const { pool, rt, events } = build([provider('kimi', ks, { model: PAID_MODEL }), provider('glm45', [key('g', { role: 'primary' })], { model: PAID_MODEL_2 })]);
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.congested(T0 + 20_000), 10, T0);
      expect(noKey(await pool.pick(p, T0 + 1))).toEqual({ keyId: null, retryAt: T0 + 20_000, reason: 'congested' });
      expect(await pool.congestedUntil(p, T0 + 1)).toBe(T0 + 20_000);
      expect(events.cooled).toEqual([]);
      expect(events.congested).toEqual([{ at: T0, provider: 'kimi', model: PAID_MODEL, until: T0 + 20_000, reason: 'upstream_rate_limited' }]);
      const statuses = await pool.keyStatuses(p, T0 + 1);
      expect(statuses.map((s) => [s.state, s.cooldown_remaining_ms])).toEqual([
        ['active', 0],
        ['active', 0],
      ]);
      // Another model is not congested; and the model is usable again at the deadline.
      expect((await pool.pick(rt('glm45'), T0 + 1)).keyId).not.toBeNull();
      expect((await pool.pick(p, T0 + 20_000)).keyId).not.toBeNull();
    });

    test('congestion without a retry hint lasts congestionMs', async () => {
      const ks = keys('a');
      const { pool, rt } = build([provider('kimi', ks)], { congestionMs: 7_000 });
      await pool.report(rt('kimi'), ks[0].id, outcome.congested(undefined, 'capacity_exhausted'), 10, T0);
      expect(noKey(await pool.pick(rt('kimi'), T0))).toEqual({ keyId: null, retryAt: T0 + 7_000, reason: 'congested' });
    });

    test('per-key rpm budget blocks the key until the next whole minute', async () => {
      const ks = keys('a', 'b');
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks, { rpm: 2 })]);
      const p = rt('kimi');
      expect(await pickNames(pool, p, 4, T0, n)).toEqual(['a', 'b', 'a', 'b']);
      expect(noKey(await pool.pick(p, T0 + 1))).toEqual({ keyId: null, retryAt: NEXT_MINUTE, reason: 'budget' });
      expect(noKey(await pool.pick(p, NEXT_MINUTE - 1))).toEqual({ keyId: null, retryAt: NEXT_MINUTE, reason: 'budget' });
      expect((await pickNames(pool, p, 2, NEXT_MINUTE, n)).sort()).toEqual(['a', 'b']);
    });

    test('per-account free budget (freeRpm) holds across the keys and providers of the account', async () => {
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const a2 = key('a2', { account: 'team1' });
      const b = key('b', { account: 'team2' });
      const n = namer(a1, a2, b);
      const { pool, rt } = build(
        [provider('kimi', [a1, a2, b], { model: FREE_MODEL }), provider('glm45', [a2], { model: FREE_MODEL_2 }), provider('qwen3', [a1], { model: PAID_MODEL_2 })],
        { freeRpm: 3 },
      );
      const seq = await pickNames(pool, rt('kimi'), 6, T0, n);
      const byAccount = { team1: seq.filter((s) => s === 'a1' || s === 'a2').length, team2: seq.filter((s) => s === 'b').length };
      expect(byAccount).toEqual({ team1: 3, team2: 3 });
      expect(noKey(await pool.pick(rt('kimi'), T0))).toEqual({ keyId: null, retryAt: NEXT_MINUTE, reason: 'budget' });
      // Another :free provider on the same account is out of budget too; a paid model is not counted.
      expect(noKey(await pool.pick(rt('glm45'), T0))).toEqual({ keyId: null, retryAt: NEXT_MINUTE, reason: 'budget' });
      expect(n((await pool.pick(rt('qwen3'), T0)).keyId)).toBe('a1');
      expect(n((await pool.pick(rt('glm45'), NEXT_MINUTE)).keyId)).toBe('a2');
    });

    test('per-day budget (rpd) resets at 00:00 UTC', async () => {
      const late = Date.UTC(2026, 10, 22, 23, 59, 30);
      const ks = keys('a');
      const n = namer(...ks);
      const { pool, rt } = build([provider('kimi', ks, { rpd: 2 })]);
      const p = rt('kimi');
      expect(await pickNames(pool, p, 2, late, n)).toEqual(['a', 'a']);
      expect(noKey(await pool.pick(p, late + 1))).toEqual({ keyId: null, retryAt: NEXT_MIDNIGHT, reason: 'budget' });
      // A new minute is not a new day.
      expect(noKey(await pool.pick(p, NEXT_MIDNIGHT - 1))).toEqual({ keyId: null, retryAt: NEXT_MIDNIGHT, reason: 'budget' });
      expect(await pickNames(pool, p, 2, NEXT_MIDNIGHT, n)).toEqual(['a', 'a']);
      expect(noKey(await pool.pick(p, NEXT_MIDNIGHT + 1))).toEqual({ keyId: null, retryAt: NEXT_MIDNIGHT + 86_400_000, reason: 'budget' });
    });

    test('with every key cooling, pick returns the soonest retryAt', async () => {
      const ks = keys('a', 'b', 'c');
      const [a, b, c] = ks;
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.cool('key', T0 + 30_000), 10, T0);
      await pool.report(p, b.id, outcome.cool('key', T0 + 10_000), 10, T0);
      await pool.report(p, c.id, outcome.cool('key', T0 + 20_000), 10, T0);
      expect(noKey(await pool.pick(p, T0 + 1))).toEqual({ keyId: null, retryAt: T0 + 10_000, reason: 'cooling' });
    });

    test("every key disabled → retryAt null, reason 'disabled'", async () => {
      const ks = keys('a', 'b');
      const [a, b] = ks;
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.disable('invalid_key'), 10, T0);
      await pool.report(p, b.id, outcome.disable('insufficient_credits'), 10, T0);
      expect(noKey(await pool.pick(p, T0))).toEqual({ keyId: null, retryAt: null, reason: 'disabled' });
    });

    test('report emits cooled, disabled and recovered events with the right payloads', async () => {
      const ks = keys('a', 'b', 'c');
      const [a, b] = ks;
      const { pool, rt, events } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.cool('key', T0 + 10_000, 'rate_limited'), 10, T0);
      await pool.report(p, b.id, outcome.disable('invalid_key'), 10, T0 + 1);
      expect(await pool.pick(p, T0 + 10_000)).toEqual({ keyId: a.id, index: 0, trial: true });
      await pool.report(p, a.id, outcome.success(), 10, T0 + 10_050, { trial: true });
      expect(events.cooled).toEqual([{ at: T0, provider: 'kimi', keyId: a.id, scope: 'key', until: T0 + 10_000, reason: 'rate_limited' }]);
      expect(events.disabled).toEqual([{ at: T0 + 1, provider: 'kimi', keyId: b.id, reason: 'invalid_key' }]);
      expect(events.recovered).toEqual([{ at: T0 + 10_050, provider: 'kimi', keyId: a.id }]);
    });

    test('keyStatuses shows state, reason and cooldown_remaining_ms for every key', async () => {
      const a = key('a', { role: 'primary' });
      const b = key('b');
      const c = key('c');
      const r = key('r', { role: 'reserve' });
      const n = namer(a, b, c, r);
      const { pool, rt } = build([provider('kimi', [a, b, c, r])]);
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.cool('key', T0 + 45_000, 'rate_limited'), 120, T0);
      await pool.report(p, b.id, outcome.disable('invalid_key'), 80, T0);
      const statuses = await pool.keyStatuses(p, T0 + 5_000);
      expect(statuses.map((s) => ({ k: n(s.id), role: s.role, state: s.state, reason: s.reason, until: s.cooldown_until, left: s.cooldown_remaining_ms }))).toEqual([
        { k: 'a', role: 'primary', state: 'cooling', reason: 'rate_limited', until: T0 + 45_000, left: 40_000 },
        { k: 'b', role: 'backup', state: 'disabled', reason: 'invalid_key', until: null, left: 0 },
        { k: 'c', role: 'backup', state: 'active', reason: null, until: null, left: 0 },
        { k: 'r', role: 'reserve', state: 'active', reason: null, until: null, left: 0 },
      ]);
      expect(statuses[0]).toMatchObject({ requests: 1, rate_limited: 1, failures: 0, successes: 0, avg_latency_ms: 120, preview: a.preview });
      expect(statuses[1]).toMatchObject({ requests: 1, failures: 1, rate_limited: 0 });
      expect(JSON.stringify(statuses)).not.toContain(a.key);
    });

    test('X-RateLimit-Remaining 0 on a success cools the account until the reset', async () => {
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const a2 = key('a2', { account: 'team1' });
      const b = key('b', { account: 'team2' });
      const n = namer(a1, a2, b);
      const { pool, rt, events } = build([provider('kimi', [a1, a2, b], { model: PAID_MODEL })]);
      const p = rt('kimi');
      await pool.report(p, a1.id, outcome.success({ limit: 100, remaining: 0, resetAt: T0 + 50_000 }), 10, T0);
      expect(events.cooled).toEqual([{ at: T0, provider: 'kimi', keyId: a1.id, scope: 'account', until: T0 + 50_000, reason: 'remaining_zero' }]);
      expect(await pickNames(pool, p, 3, T0 + 1, n)).toEqual(['b', 'b', 'b']);
      const statuses = await pool.keyStatuses(p, T0 + 1);
      expect(statuses.map((s) => [n(s.id), s.state, s.cooldown_remaining_ms])).toEqual([
        ['a1', 'cooling', 49_999],
        ['a2', 'cooling', 49_999],
        ['b', 'active', 0],
      ]);
      expect(statuses[0]).toMatchObject({ limit: 100, remaining: 0, reset_at: new Date(T0 + 50_000).toISOString(), successes: 1 });
    });

    test('X-RateLimit-Remaining 0 on a :free model cools the account for free models only', async () => {
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const b = key('b', { account: 'team2' });
      const n = namer(a1, b);
      const { pool, rt, events } = build([provider('kimi', [a1, b], { model: FREE_MODEL }), provider('qwen3', [a1], { model: PAID_MODEL_2 })]);
      await pool.report(rt('kimi'), a1.id, outcome.success({ limit: 20, remaining: 0, resetAt: NEXT_MINUTE }), 10, T0);
      expect(events.cooled.map((e) => [e.scope, e.until])).toEqual([['account_free', NEXT_MINUTE]]);
      expect(await pickNames(pool, rt('kimi'), 2, T0 + 1, n)).toEqual(['b', 'b']);
      expect(n((await pool.pick(rt('qwen3'), T0 + 1)).keyId)).toBe('a1');
    });

    test('X-RateLimit-Remaining 0 on a key-scoped 429 cools only the key: the limit that answered (docs/design.md#remaining-zero)', async () => {
      // docs/design.md#remaining-zero refines §4: "X-RateLimit-Remaining: 0 cools the scope of the limit that answered".
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const a2 = key('a2', { account: 'team1' });
      const b = key('b', { account: 'team2' });
      const n = namer(a1, a2, b);
      const { pool, rt } = build([provider('kimi', [a1, a2, b], { model: PAID_MODEL })]);
      const p = rt('kimi');
      const limited: Outcome = {
        kind: 'cool',
        status: 429,
        scope: 'key',
        until: T0 + 50_000,
        reason: 'rate_limited',
        message: 'Rate limit exceeded',
        rate: { limit: 10, remaining: 0, resetAt: T0 + 50_000 },
      };
      await pool.report(p, a1.id, limited, 10, T0);
      expect(await pickNames(pool, p, 4, T0 + 1, n)).toEqual(['a2', 'b', 'a2', 'b']);
      const statuses = await pool.keyStatuses(p, T0 + 1);
      expect(statuses.map((s) => [n(s.id), s.state])).toEqual([
        ['a1', 'cooling'],
        ['a2', 'active'],
        ['b', 'active'],
      ]);
    });

    test("X-RateLimit-Remaining 0 on a per-model cap cools that account+model pair only, never the account's other :free models (docs/design.md#remaining-zero)", async () => {
      // docs/design.md#the-outcome-table, 429 bodies seen in real use, 3: OpenRouter's cap on one model, headers copied into metadata.
      const body = {
        error: {
          code: 429,
          message: `Rate limit exceeded: limit_rpm/${FREE_MODEL}/4c1c2f5a-6b3e-4bb4-9a0e-2f6d1e0c9a11. High demand for ${FREE_MODEL} on OpenRouter - limited to 8 requests per minute. Please retry shortly.`,
          metadata: { headers: { 'X-RateLimit-Limit': '8', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(NEXT_MINUTE) }, provider_name: null, limit_source: 'openrouter_shared_capacity' },
        },
      };
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const b = key('b', { account: 'team2' });
      const n = namer(a1, b);
      const { pool, rt } = build([provider('kimi', [a1, b], { model: FREE_MODEL }), provider('glm', [a1], { model: FREE_MODEL_2 })]);
      await pool.report(rt('kimi'), a1.id, classifyResponse(429, {}, body, T0), 10, T0);
      expect(n((await pool.pick(rt('kimi'), T0 + 1)).keyId)).toBe('b');
      expect(n((await pool.pick(rt('kimi'), T0 + 2)).keyId)).toBe('b');
      // Another :free model of the same account is untouched.
      expect(n((await pool.pick(rt('glm'), T0 + 3)).keyId)).toBe('a1');
      expect(n((await pool.pick(rt('kimi'), NEXT_MINUTE)).keyId)).not.toBeNull();
    });

    test('X-RateLimit-Remaining 0 carried by an upstream congestion or an edge answer cools no key: the limit that answered is not ours (docs/design.md#remaining-zero)', async () => {
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const a2 = key('a2', { account: 'team1' });
      const n = namer(a1, a2);
      const { pool, rt, events } = build([provider('kimi', [a1, a2], { model: FREE_MODEL })]);
      const rate = { limit: 10, remaining: 0, resetAt: T0 + 50_000 };
      await pool.report(rt('kimi'), a1.id, { kind: 'congested', status: 429, until: T0 + 1_000, reason: 'upstream_rate_limited', message: 'Provider returned error', rate }, 10, T0);
      await pool.report(rt('kimi'), a2.id, { kind: 'edge', status: 429, until: T0 + 1_000, reason: 'edge_rate_limited', message: 'error code: 1015', rate }, 10, T0);
      expect(events.cooled).toEqual([]);
      expect(await pickNames(pool, rt('kimi'), 2, T0 + 1_000, n)).toEqual(['a1', 'a2']);
    });

    test('an edge 429 (Cloudflare 1015) cools no key and holds every provider until Retry-After, else 5 s (docs/design.md#the-outcome-table)', async () => {
      const a = key('a', { role: 'primary' });
      const b = key('b');
      const g = key('g', { role: 'primary' });
      const n = namer(a, b, g);
      const { pool, rt, events } = build([provider('kimi', [a, b], { model: FREE_MODEL }), provider('glm', [g], { model: PAID_MODEL_2 })]);
      // The text Cloudflare answers API clients with (https://github.com/BerriAI/litellm/issues/8448, 2025-02-11), as the host's own 429.
      await pool.report(rt('kimi'), a.id, classifyResponse(429, { 'retry-after': '20' }, 'error code: 1015', T0), 10, T0);
      expect(noKey(await pool.pick(rt('kimi'), T0 + 1))).toEqual({ keyId: null, retryAt: T0 + 20_000, reason: 'edge' });
      expect(noKey(await pool.pick(rt('glm'), T0 + 1))).toEqual({ keyId: null, retryAt: T0 + 20_000, reason: 'edge' });
      expect(await pool.edgeUntil(T0 + 1)).toBe(T0 + 20_000);
      expect(events.cooled).toEqual([]);
      expect(events.edge).toEqual([{ at: T0, provider: 'kimi', keyId: a.id, until: T0 + 20_000, reason: 'edge_rate_limited' }]);
      expect((await pool.keyStatuses(rt('kimi'), T0 + 1)).map((s) => [n(s.id), s.state])).toEqual([['a', 'active'], ['b', 'active']]);
      // The hold ends by itself; every key is usable at once, none probes.
      expect(await pool.pick(rt('kimi'), T0 + 20_000)).toMatchObject({ keyId: expect.any(String), trial: false });
      expect(n((await pool.pick(rt('glm'), T0 + 20_000)).keyId)).toBe('g');
      // Without Retry-After: the short default.
      await pool.report(rt('glm'), g.id, classifyResponse(429, {}, 'error code: 1015', T0 + 30_000), 10, T0 + 30_000);
      expect(await pool.edgeUntil(T0 + 30_000)).toBe(T0 + 35_000);
    });

    test('a 402 for the account\'s credits disables every key of that account, in every provider, learned aliases included (docs/design.md#blame-on-evidence)', async () => {
      // https://github.com/Alishahryar1/free-claude-code/issues/772 (2026-06-11), "Upstream error:" as pasted.
      const body = {
        error: {
          message: 'Insufficient credits. This account never purchased credits. Make sure your key is on the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits',
          code: 402,
        },
      };
      const a1 = key('a1', { role: 'primary', account: 'team1' });
      const a2 = key('a2', { account: 'team1' });
      const c = key('c'); // configured on its own account; OpenRouter's user_id tells it is team1's
      const b = key('b', { account: 'team2' });
      const n = namer(a1, a2, c, b);
      const { pool, rt, events } = build([provider('kimi', [a1, a2, b], { model: PAID_MODEL }), provider('glm', [c, a2], { model: PAID_MODEL_2 })]);
      await pool.report(rt('glm'), c.id, outcome.success(undefined, 'team1'), 10, T0);
      await pool.report(rt('kimi'), a1.id, classifyResponse(402, {}, body, T0 + 1), 10, T0 + 1);
      expect((await pool.keyStatuses(rt('kimi'), T0 + 2)).map((s) => [n(s.id), s.state, s.reason])).toEqual([
        ['a1', 'disabled', 'insufficient_credits'],
        ['a2', 'disabled', 'insufficient_credits'],
        ['b', 'active', null],
      ]);
      expect((await pool.keyStatuses(rt('glm'), T0 + 2)).map((s) => [n(s.id), s.state])).toEqual([['c', 'disabled'], ['a2', 'disabled']]);
      expect(new Set(events.disabled.map((e) => n(e.keyId)))).toEqual(new Set(['a1', 'a2', 'c']));
      expect(await pickNames(pool, rt('kimi'), 2, T0 + 3, n)).toEqual(['b', 'b']);
      expect(noKey(await pool.pick(rt('glm'), T0 + 3))).toEqual({ keyId: null, retryAt: null, reason: 'disabled' });
    });

    test('a success resets the doubling even when it carries X-RateLimit-Remaining 0: the next 429 without a reset cools for the base cooldown', async () => {
      const ks = keys('a', 'b');
      const [a] = ks;
      const { pool, rt, events } = build([provider('kimi', ks)], { cooldownMs: 60_000, maxCooldownMs: 900_000 });
      const p = rt('kimi');
      await pool.report(p, a.id, outcome.success({ limit: 100, remaining: 0, resetAt: T0 + 10_000 }), 10, T0);
      await pool.report(p, a.id, outcome.cool('key'), 10, T0 + 10_000);
      expect(events.cooled.map((e) => [e.reason, e.until])).toEqual([
        ['remaining_zero', T0 + 10_000],
        ['rate_limited', T0 + 10_000 + 60_000],
      ]);
    });

    test('hundreds of keys: 300 keys, 600 picks → each key exactly twice (correctness only, not timed)', async () => {
      const ks = Array.from({ length: 300 }, (_, i) => key(`k${i}`, { role: i === 0 ? 'primary' : 'backup' }));
      const { pool, rt } = build([provider('kimi', ks)]);
      const p = rt('kimi');
      const counts = new Map<string, number>();
      for (let i = 0; i < 600; i++) {
        const r = await pool.pick(p, T0);
        counts.set(String(r.keyId), (counts.get(String(r.keyId)) ?? 0) + 1);
      }
      expect(counts.size).toBe(300);
      expect([...new Set(counts.values())]).toEqual([2]);
    });
  });
}
