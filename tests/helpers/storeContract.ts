/**
 * The state store contract: the same tests run against every StateStore (memory, snapshot, Redis),
 * so that their behaviour cannot drift. MemoryStore is the reference. Clocks are fixed: no sleeps.
 */
import type { CoolScope } from '../../providers/limits/rateLimit';
import { EXPIRY, RULES } from '../../providers/store/rules';
import type { CoolRequest, KeyView, LearnRequest, PickPlan, PickResult, StateStore } from '../../providers/store/types';

// 10 s into a minute, so that "this minute" and "next minute" are exact.
const T = Date.UTC(2026, 10, 22, 12, 30, 10);
const MINUTE_END = Date.UTC(2026, 10, 22, 12, 31, 0);
const DAY_END = Date.UTC(2026, 10, 23);

interface PlanOptions {
  provider?: string;
  model?: string;
  free?: boolean;
  /** round-robin over this many leading keys; 0 is failover. Default: all non-reserve keys. */
  rotating?: number;
  /** How many trailing keys are reserves. Default 0. */
  reserves?: number;
  accounts?: Record<string, string>;
  keyRpm?: number;
  keyRpd?: number;
  accountRpm?: number;
  accountRpd?: number;
}

function planOf(ids: string[], o: PlanOptions = {}): PickPlan {
  return {
    provider: o.provider ?? 'kimi',
    model: o.model ?? 'vendor/model',
    free: o.free ?? false,
    candidates: ids.map((id) => ({ keyId: id, account: o.accounts?.[id] ?? `key:${id}` })),
    rotating: o.rotating ?? ids.length - (o.reserves ?? 0),
    reserves: o.reserves ?? 0,
    keyRpm: o.keyRpm,
    keyRpd: o.keyRpd,
    accountRpm: o.accountRpm,
    accountRpd: o.accountRpd,
    trialTtlMs: 5000,
  };
}

function viewOf(plan: PickPlan, id: string): KeyView {
  const c = plan.candidates.find((x) => x.keyId === id)!;
  return { keyId: id, account: c.account, model: plan.model, free: plan.free };
}

function coolOf(view: KeyView, scope: CoolScope, until?: number, reason = 'rate_limited'): CoolRequest {
  return { keyId: view.keyId, account: view.account, model: view.model, scope, until, reason, baseMs: 1000, maxMs: 8000 };
}

/** The key ids of n picks in a row ('-' for none). */
async function picks(store: StateStore, plan: PickPlan, n: number, now: number, avoid?: string[]): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await store.pick(plan, now, avoid)).keyId ?? '-');
  return out;
}

const none = (retryAt: number | null, reason: string): PickResult => ({ keyId: null, retryAt, reason } as PickResult);

/** A lesson: from a 429 (which may lengthen a window guessed too short) or from GET /key (which does not). */
function learnOf(view: KeyView, scope: CoolScope, limit: number, windowMs: number, resetAt: number, source: '429' | 'key_probe' = '429'): LearnRequest {
  return { keyId: view.keyId, account: view.account, model: view.model, scope, limit, windowMs, resetAt, source, lengthen: source === '429' };
}

/** A 10 s window boundary after T (T is 12:30:10). */
const W10 = Date.UTC(2026, 10, 22, 12, 30, 20);

const DAY = 86_400_000;

/**
 * One check per row of the rule table (providers/store/rules.ts), with an injected clock: each row,
 * its expiry included, holds on every store. A row without a check fails.
 */
const RULE_CHECKS: Record<string, (store: StateStore) => Promise<void>> = {
  async cool(store) {
    const p = planOf(['a', 'b'], { rotating: 0 });
    const a = viewOf(p, 'a');
    expect(await store.cool(coolOf(a, 'key', T + 5000), T)).toBe(T + 5000);
    expect(await picks(store, p, 1, T + 4999)).toEqual(['b']);
    // Without a reset: base × 2^(strikes−1), the first 429 above was strike 1.
    expect(await store.cool(coolOf(viewOf(p, 'b'), 'key'), T)).toBe(T + 1000);
    expect(await store.cool(coolOf(viewOf(p, 'b'), 'key'), T + 2000)).toBe(T + 4000);
  },
  async 'cool-later-wins'(store) {
    const a = viewOf(planOf(['a']), 'a');
    await store.cool(coolOf(a, 'key', T + 9000), T);
    expect(await store.cool(coolOf(a, 'key', T + 3000), T)).toBe(T + 9000);
  },
  async recover(store) {
    const p = planOf(['a'], { rotating: 0 });
    await store.cool(coolOf(viewOf(p, 'a'), 'key', T + 1000), T);
    expect(await store.pick(p, T + 1000)).toEqual({ keyId: 'a', index: 0, trial: true });
    expect((await store.pick(p, T + 1000)).keyId).toBeNull();
    // The trial's hold lasts trialTtlMs (5 s) at most.
    expect(await store.pick(p, T + 6000)).toEqual({ keyId: 'a', index: 0, trial: true });
  },
  async 'trial-success'(store) {
    const p = planOf(['a'], { rotating: 0 });
    const a = viewOf(p, 'a');
    await store.cool(coolOf(a, 'key'), T);
    await store.cool(coolOf(a, 'key'), T);
    expect((await store.pick(p, T + 2000)).keyId).toBe('a');
    await store.succeed(a, T + 2000);
    expect(await store.pick(p, T + 2000)).toEqual({ keyId: 'a', index: 0, trial: false });
    expect(await store.cool(coolOf(a, 'key'), T + 3000)).toBe(T + 4000);
  },
  async 'trial-ends'(store) {
    const p = planOf(['a', 'b'], { rotating: 0, accounts: { a: 'team', b: 'team' } });
    const a = viewOf(p, 'a');
    await store.cool(coolOf(a, 'account', T + 1000), T);
    expect(await store.pick(p, T + 1000)).toEqual({ keyId: 'a', index: 0, trial: true });
    await store.cool(coolOf(a, 'key', T + 60_000), T + 1000);
    await store.endTrial(a, T + 1000);
    expect((await store.pick(p, T + 1001)).keyId).toBe('b');
  },
  async 'recovering-expires'(store) {
    const p = planOf(['a'], { rotating: 0 });
    const a = viewOf(p, 'a');
    await store.cool(coolOf(a, 'key', T + 1000), T);
    const end = T + 1000 + EXPIRY.recoveringMs;
    expect((await store.inspect([a], end - 1))[0].recovering).toBe(true);
    expect((await store.inspect([a], end))[0].recovering).toBe(false);
    expect(await store.pick(p, end)).toEqual({ keyId: 'a', index: 0, trial: false });
  },
  async 'strikes-expire'(store) {
    const a = viewOf(planOf(['a']), 'a');
    await store.cool(coolOf(a, 'key'), T);
    expect(await store.cool(coolOf(a, 'key'), T + EXPIRY.strikesMs - 1)).toBe(T + EXPIRY.strikesMs - 1 + 2000);
    const later = T + EXPIRY.strikesMs - 1 + EXPIRY.strikesMs;
    expect(await store.cool(coolOf(a, 'key'), later)).toBe(later + 1000);
  },
  async disable(store) {
    const p = planOf(['a', 'b'], { rotating: 0 });
    await store.setDisabled('a', 'invalid_key', T);
    expect(await picks(store, p, 1, T + EXPIRY.disabledMs - 1)).toEqual(['b']);
    expect((await store.inspect([viewOf(p, 'a')], T + EXPIRY.disabledMs - 1))[0].disabled).toBe('invalid_key');
    expect((await store.inspect([viewOf(p, 'a')], T + EXPIRY.disabledMs))[0].disabled).toBeNull();
    expect(await picks(store, p, 1, T + EXPIRY.disabledMs)).toEqual(['a']);
  },
  async reactivate(store) {
    const p = planOf(['a'], { rotating: 0 });
    const a = viewOf(p, 'a');
    await store.cool(coolOf(a, 'key', T + 60_000), T);
    await store.setDisabled('a', 'manual', T);
    await store.setDisabled('a', null, T + 1);
    expect(await store.pick(p, T + 1)).toEqual({ keyId: 'a', index: 0, trial: false });
    await store.setDisabled('a', 'manual', T + 2);
    expect((await store.inspect([a], T + 2))[0].disabled).toBe('manual');
  },
  async congest(store) {
    const p = planOf(['a']);
    await store.congest(p.model, T + 4000, 'upstream', T);
    expect(await store.pick(p, T + 3999)).toEqual(none(T + 4000, 'congested'));
    expect((await store.pick(p, T + 4000)).keyId).toBe('a');
  },
  async edge(store) {
    const p = planOf(['a']);
    const other = planOf(['b'], { provider: 'qwen', model: 'vendor/other' });
    await store.holdHost(T + 3000, 'edge_rate_limited', T);
    await store.holdHost(T + 1000, 'edge_rate_limited', T);
    expect(await store.pick(p, T + 2999)).toEqual(none(T + 3000, 'edge'));
    expect(await store.pick(other, T + 2999)).toEqual(none(T + 3000, 'edge'));
    expect((await store.pick(p, T + 3000)).keyId).toBe('a');
  },
  async count(store) {
    const p = planOf(['a'], { keyRpm: 1 });
    expect(await picks(store, p, 2, T)).toEqual(['a', '-']);
    expect((await store.inspect([viewOf(p, 'a')], MINUTE_END))[0]).toMatchObject({ minuteCount: 0, dayCount: 1 });
    expect((await store.inspect([viewOf(p, 'a')], DAY_END))[0]).toMatchObject({ minuteCount: 0, dayCount: 0 });
  },
  async 'learn-account'(store) {
    const p = planOf(['x', 'y'], { rotating: 0 });
    await store.learnAccount('key:x', 'user_1', T);
    await store.learnAccount('key:y', 'user_1', T);
    await store.cool(coolOf(viewOf(p, 'x'), 'account', T + 3 * DAY), T);
    expect(await store.pick(p, T + 1)).toEqual(none(T + 3 * DAY, 'cooling'));
    const lapse = T + EXPIRY.accountMs;
    expect((await store.inspect([viewOf(p, 'y')], lapse - 1))[0].account).toBe('user_1');
    expect((await store.inspect([viewOf(p, 'y')], lapse))[0].account).toBe('key:y');
  },
  async 'learn-limit'(store) {
    const p = planOf(['a'], { free: true, accounts: { a: 'acc' } });
    const v = viewOf(p, 'a');
    await store.learnLimit(learnOf(v, 'account_free', 1, 10_000, W10), T);
    expect((await store.inspect([v], T))[0].learned).toEqual([{ gate: 'f:acc', limit: 1, windowMs: 10_000, learnedAt: T, source: '429', used: 0, anchor: W10 }]);
    // A 429 in a later window: the window was too short and lengthens (W10 + 10 s falls on 20 s).
    await store.learnLimit(learnOf(v, 'account_free', 1, 10_000, W10 + 20_000), W10 + 5_000);
    expect((await store.inspect([v], W10 + 5_000))[0].learned).toMatchObject([{ windowMs: 20_000, learnedAt: W10 + 5_000 }]);
    expect((await store.inspect([v], W10 + 5_000 + EXPIRY.learnedMs - 1))[0].learned).toHaveLength(1);
    expect((await store.inspect([v], W10 + 5_000 + EXPIRY.learnedMs))[0].learned).toEqual([]);
  },
  async 'learned-count'(store) {
    const p = planOf(['a'], { free: true, accounts: { a: 'acc' } });
    await store.learnLimit(learnOf(viewOf(p, 'a'), 'account_free', 2, 10_000, W10), T);
    expect(await picks(store, p, 2, T + 1)).toEqual(['a', 'a']);
    expect(await store.pick(p, T + 2)).toEqual(none(W10, 'budget'));
    expect(await picks(store, p, 1, W10)).toEqual(['a']);
  },
  async 'learned-anchor'(store) {
    const p = planOf(['a'], { free: true, accounts: { a: 'acc' } });
    const v = viewOf(p, 'a');
    // A 10 s limit whose reset is off every whole multiple (12:30:13.500): its windows run from there.
    const reset = T + 3_500;
    await store.learnLimit(learnOf(v, 'account_free', 2, 10_000, reset), T);
    expect(await picks(store, p, 3, T + 1)).toEqual(['a', 'a', '-']);
    // Held until the reset the upstream sent, not until the whole multiple (12:30:20).
    expect(await store.pick(p, T + 2)).toEqual(none(reset, 'budget'));
    // The trial call first (the window that follows is orche's reckoning), then the rest of the window.
    expect(await picks(store, p, 2, reset)).toEqual(['a', '-']);
    await store.succeed(v, reset);
    expect(await picks(store, p, 2, reset + 1)).toEqual(['a', '-']);
    expect(await store.pick(p, reset + 1)).toEqual(none(reset + 10_000, 'budget'));
    expect((await store.inspect([v], reset + 1))[0].learned).toMatchObject([{ windowMs: 10_000, used: 2 }]);
    // A later 429 sends another reset, with none remaining: the windows re-anchor there (a window
    // opened at a first call), and the window it fell in is full.
    const next = reset + 10_000 + 1_234;
    await store.learnLimit({ ...learnOf(v, 'account_free', 2, 10_000, next), used: 2 }, reset + 10_500);
    expect(await store.pick(p, reset + 10_600)).toEqual(none(next, 'budget'));
    expect(await picks(store, p, 1, next)).toEqual(['a']);
    await store.succeed(v, next);
    expect(await picks(store, p, 2, next + 1)).toEqual(['a', '-']);
  },
  async 'learned-seed'(store) {
    const p = planOf(['a', 'b'], { free: true, rotating: 0, accounts: { a: 'acc', b: 'acc' } });
    const v = viewOf(p, 'a');
    // GET /key: 48 of the account's 50 :free calls of the UTC day already used.
    await store.learnLimit({ ...learnOf(v, 'account_free', 50, DAY, DAY_END, 'key_probe'), used: 48 }, T);
    expect(await picks(store, p, 3, T + 1)).toEqual(['a', 'a', '-']);
    expect(await store.pick(p, T + 2)).toEqual(none(DAY_END, 'budget'));
    // A later probe that says less (its count lags) never lowers orche's; one that says more raises it.
    await store.learnLimit({ ...learnOf(v, 'account_free', 50, DAY, DAY_END, 'key_probe'), used: 10 }, T + 3);
    expect((await store.inspect([v], T + 3))[0].learned).toMatchObject([{ limit: 50, used: 50 }]);
    expect(await picks(store, p, 1, DAY_END)).toEqual(['a']);
  },
  async 'learned-full'(store) {
    const p = planOf(['a', 'b'], { free: true, rotating: 0, accounts: { a: 'acc', b: 'acc' } });
    const a = viewOf(p, 'a');
    await store.learnLimit(learnOf(a, 'account_free', 2, 10_000, W10), T);
    expect(await picks(store, p, 2, T + 1)).toEqual(['a', 'a']);
    // Full: the account's gate cools until the window's end, for every key of the account (a spent budget).
    expect(await store.pick(p, T + 2)).toEqual(none(W10, 'budget'));
    expect((await store.inspect([viewOf(p, 'b')], T + 2))[0]).toMatchObject({ cooldownUntil: W10, cooldownReason: 'learned_limit' });
    // At the window's end one trial call first (orche's reckoning of the window may be early) …
    expect(await store.pick(p, W10)).toEqual({ keyId: 'a', index: 0, trial: true, learned: true });
    expect((await store.pick(p, W10)).keyId).toBeNull();
    // … and the rest of the window once it succeeded.
    await store.succeed(a, W10 + 5);
    expect(await picks(store, p, 2, W10 + 6)).toEqual(['a', '-']);
  },
  async 'learned-refund'(store) {
    const p = planOf(['a'], { free: true, accounts: { a: 'acc' } });
    await store.learnLimit(learnOf(viewOf(p, 'a'), 'account_free', 1, 10_000, W10), T);
    expect(await picks(store, p, 2, T + 1)).toEqual(['a', '-']);
    await store.refund(viewOf(p, 'a'), T + 1);
    expect(await picks(store, p, 2, T + 2)).toEqual(['a', '-']);
  },
  async position(store) {
    const p = planOf(['a', 'b', 'c']);
    expect(await picks(store, p, 1, T)).toEqual(['a']);
    expect(await picks(store, p, 1, T + EXPIRY.positionMs - 1)).toEqual(['b']);
    expect(await picks(store, p, 1, T + EXPIRY.positionMs - 1 + EXPIRY.positionMs)).toEqual(['a']);
  },
};

export function describeStoreContract(name: string, makeStore: () => Promise<StateStore>, cleanup?: (store: StateStore) => Promise<void>): void {
  describe(`StateStore contract: ${name}`, () => {
    let store: StateStore;
    beforeEach(async () => {
      store = await makeStore();
    });
    afterEach(async () => {
      if (cleanup) await cleanup(store);
      else await store.close();
    });

    describe('the rule table (providers/store/rules.ts)', () => {
      test.each(RULES.map((r) => [r.id, r] as const))('%s', async (id, rule) => {
        const check = RULE_CHECKS[id];
        if (!check) throw new Error(`rule ${id} (${rule.state} —${rule.event}→ ${rule.next}) has no check`);
        await check(store);
      });
    });

    describe('pick', () => {
      test('round-robin spreads picks over the keys in order, with a position per provider', async () => {
        const kimi = planOf(['a', 'b', 'c']);
        const qwen = planOf(['a', 'b', 'c'], { provider: 'qwen', model: 'vendor/other' });
        expect(await picks(store, kimi, 4, T)).toEqual(['a', 'b', 'c', 'a']);
        expect(await picks(store, qwen, 1, T)).toEqual(['a']);
        expect(await picks(store, kimi, 2, T)).toEqual(['b', 'c']);
        expect(await store.pick(kimi, T)).toEqual({ keyId: 'a', index: 0, trial: false });
      });

      test('failover keeps the primary until it cools, then backups in order, then the primary again', async () => {
        const p = planOf(['a', 'b', 'c'], { rotating: 0 });
        expect(await picks(store, p, 2, T)).toEqual(['a', 'a']);
        await store.cool(coolOf(viewOf(p, 'a'), 'key', T + 1000), T);
        expect(await picks(store, p, 2, T)).toEqual(['b', 'b']);
        await store.cool(coolOf(viewOf(p, 'b'), 'key', T + 2000), T);
        expect(await picks(store, p, 1, T)).toEqual(['c']);
        expect(await store.pick(p, T + 1000)).toEqual({ keyId: 'a', index: 0, trial: true });
        await store.succeed(viewOf(p, 'a'), T + 1000);
        expect(await store.pick(p, T + 1000)).toEqual({ keyId: 'a', index: 0, trial: false });
      });

      test('reserve keys serve only when every other key is unusable, and do not move the rotation', async () => {
        const p = planOf(['a', 'b', 'r'], { reserves: 1 });
        expect(await picks(store, p, 3, T)).toEqual(['a', 'b', 'a']);
        await store.cool(coolOf(viewOf(p, 'a'), 'key', T + 1000), T);
        await store.cool(coolOf(viewOf(p, 'b'), 'key', T + 1000), T);
        expect(await store.pick(p, T)).toEqual({ keyId: 'r', index: 2, trial: false });
        await store.resetCooldowns(undefined, T);
        expect(await picks(store, p, 2, T)).toEqual(['b', 'a']);
      });

      test('keys to avoid are skipped while another key is usable, and taken when none is', async () => {
        const p = planOf(['a', 'b'], { rotating: 0 });
        expect(await picks(store, p, 1, T, ['a'])).toEqual(['b']);
        expect(await picks(store, p, 1, T, ['a', 'b'])).toEqual(['a']);
        await store.cool(coolOf(viewOf(p, 'b'), 'key', T + 1000), T);
        expect(await picks(store, p, 1, T, ['a'])).toEqual(['a']);
        const [a, b] = await store.inspect([viewOf(p, 'a'), viewOf(p, 'b')], T);
        expect([a.minuteCount, b.minuteCount]).toEqual([2, 1]);
      });

      test('an avoided key still counts as usable for the reserve rule: reserves serve only when every non-reserve key is unusable', async () => {
        const p = planOf(['a', 'b', 'r', 's'], { rotating: 0, reserves: 2 });
        expect(await picks(store, p, 1, T, ['a'])).toEqual(['b']);
        await store.cool(coolOf(viewOf(p, 'b'), 'key', T + 1000), T);
        expect(await picks(store, p, 1, T, ['a'])).toEqual(['a']);
        await store.cool(coolOf(viewOf(p, 'a'), 'key', T + 1000), T);
        expect(await picks(store, p, 1, T, ['a', 'r'])).toEqual(['s']);
        expect(await picks(store, p, 1, T, ['a', 'r', 's'])).toEqual(['r']);
        expect(await picks(store, p, 1, T)).toEqual(['r']);
      });

      test('concurrent picks are atomic: 30 at once over 3 keys land 10 on each', async () => {
        const p = planOf(['a', 'b', 'c']);
        const got = await Promise.all(Array.from({ length: 30 }, () => store.pick(p, T)));
        const counts = { a: 0, b: 0, c: 0 } as Record<string, number>;
        for (const g of got) counts[g.keyId!]++;
        expect(counts).toEqual({ a: 10, b: 10, c: 10 });
      });
    });

    describe('cool', () => {
      test('cooling again never shortens a cooldown: the later deadline wins', async () => {
        const p = planOf(['a', 'b']);
        const a = viewOf(p, 'a');
        expect(await store.cool(coolOf(a, 'key', T + 5000), T)).toBe(T + 5000);
        expect(await store.cool(coolOf(a, 'key', T + 2000), T)).toBe(T + 5000);
        expect((await store.inspect([a], T))[0].cooldownUntil).toBe(T + 5000);
        expect(await store.cool(coolOf(a, 'key', T + 9000, 'later'), T)).toBe(T + 9000);
        expect((await store.inspect([a], T))[0]).toMatchObject({ cooldownUntil: T + 9000, cooldownReason: 'later' });
      });

      test('without a reset time the cooldown doubles per 429 up to the maximum; a success resets it', async () => {
        const a = viewOf(planOf(['a']), 'a');
        const got = [];
        for (let i = 0; i < 5; i++) got.push((await store.cool(coolOf(a, 'key'), T + 10_000 * i)) - 10_000 * i);
        expect(got).toEqual([T + 1000, T + 2000, T + 4000, T + 8000, T + 8000]);
        await store.succeed(a, T + 48_000);
        expect(await store.cool(coolOf(a, 'key'), T + 48_000)).toBe(T + 49_000);
      });

      test('a recovering key gets one probe at a time; others serve meanwhile; a success opens it fully', async () => {
        const solo = planOf(['a'], { rotating: 0 });
        const a = viewOf(solo, 'a');
        await store.cool(coolOf(a, 'key', T + 1000), T);
        expect(await store.pick(solo, T)).toEqual(none(T + 1000, 'cooling'));
        expect(await store.pick(solo, T + 1000)).toEqual({ keyId: 'a', index: 0, trial: true });
        // The probe is in flight: nobody else may use the key; ask again within a second.
        expect(await store.pick(solo, T + 1000)).toEqual(none(T + 2000, 'cooling'));
        expect((await store.inspect([a], T + 1000))[0]).toMatchObject({ cooldownUntil: 0, recovering: true });
        await store.endTrial(a, T + 1000);
        expect(await store.pick(solo, T + 1000)).toEqual({ keyId: 'a', index: 0, trial: true });
        // A probe left hanging expires after trialTtlMs.
        expect(await store.pick(solo, T + 6000)).toEqual({ keyId: 'a', index: 0, trial: true });
        await store.succeed(a, T + 6000);
        expect(await store.pick(solo, T + 6000)).toEqual({ keyId: 'a', index: 0, trial: false });
        expect((await store.inspect([a], T + 6000))[0].recovering).toBe(false);

        const pair = planOf(['a', 'b'], { rotating: 0 });
        await store.cool(coolOf(viewOf(pair, 'a'), 'key', T + 7000), T + 6000);
        expect(await picks(store, pair, 3, T + 7000)).toEqual(['a', 'b', 'b']);
        await store.succeed(viewOf(pair, 'a'), T + 7000);
        expect(await picks(store, pair, 1, T + 7000)).toEqual(['a']);
      });

      test('a gate cooled again while its probe is out stays shut after the success', async () => {
        const p = planOf(['a'], { rotating: 0 });
        const a = viewOf(p, 'a');
        await store.cool(coolOf(a, 'key', T + 1000), T);
        expect((await store.pick(p, T + 1000)).keyId).toBe('a');
        await store.cool(coolOf(a, 'key', T + 4000), T + 1000);
        await store.succeed(a, T + 1000);
        expect(await store.pick(p, T + 1000)).toEqual(none(T + 4000, 'cooling'));
      });
    });

    describe('account gates', () => {
      test('an account cooldown holds every key of the declared account', async () => {
        const p = planOf(['a', 'b', 'c'], { rotating: 0, accounts: { a: 'team', b: 'team' } });
        await store.cool(coolOf(viewOf(p, 'a'), 'account', T + 3000), T);
        expect(await picks(store, p, 2, T)).toEqual(['c', 'c']);
        const seen = await store.inspect(['a', 'b', 'c'].map((id) => viewOf(p, id)), T);
        expect(seen.map((s) => [s.account, s.cooldownUntil])).toEqual([['team', T + 3000], ['team', T + 3000], ['key:c', 0]]);
      });

      test('learned aliases join accounts: a key that reported the same user_id is held too', async () => {
        const p = planOf(['x', 'y', 'z'], { rotating: 0 });
        await store.learnAccount('key:x', 'user_1', T);
        await store.learnAccount('key:y', 'user_1', T);
        await store.cool(coolOf(viewOf(p, 'x'), 'account', T + 3000), T);
        expect(await picks(store, p, 1, T)).toEqual(['z']);
        const seen = await store.inspect(['x', 'y', 'z'].map((id) => viewOf(p, id)), T);
        expect(seen.map((s) => s.account)).toEqual(['user_1', 'user_1', 'key:z']);
        expect(seen.map((s) => s.cooldownUntil)).toEqual([T + 3000, T + 3000, 0]);
      });

      test('account_free holds only free models; account_model only that model', async () => {
        const accounts = { a: 'team' };
        const free = planOf(['a', 'b'], { rotating: 0, free: true, model: 'vendor/x:free', accounts });
        const paid = planOf(['a', 'b'], { rotating: 0, model: 'vendor/x', accounts, provider: 'paid' });
        const other = planOf(['a', 'b'], { rotating: 0, model: 'vendor/y', accounts, provider: 'other' });
        await store.cool(coolOf(viewOf(free, 'a'), 'account_free', T + 3000), T);
        expect(await picks(store, free, 1, T)).toEqual(['b']);
        expect(await picks(store, paid, 1, T)).toEqual(['a']);
        await store.cool(coolOf(viewOf(paid, 'a'), 'account_model', T + 3000), T);
        expect(await picks(store, paid, 1, T)).toEqual(['b']);
        expect(await picks(store, other, 1, T)).toEqual(['a']);
      });
    });

    test('a congested model gives no key, says so with its deadline (the later wins), and clears by itself', async () => {
      const p = planOf(['a', 'b']);
      await store.congest(p.model, T + 4000, 'upstream', T);
      await store.congest(p.model, T + 1000, 'upstream', T);
      expect(await store.pick(p, T)).toEqual(none(T + 4000, 'congested'));
      expect(await store.congestedUntil(p.model, T)).toBe(T + 4000);
      expect(await store.congestedUntil('vendor/other', T)).toBe(0);
      expect(await store.congestedUntil(p.model, T + 4000)).toBe(0);
      expect((await store.pick(p, T + 4000)).keyId).toBe('a');
    });

    test('deadlines are whole milliseconds: a fractional deadline is rounded up, stored, and the store stays up', async () => {
      const p = planOf(['a', 'b']);
      const a = viewOf(p, 'a');
      await store.congest(p.model, T + 333.69, 'upstream', T + 0.5);
      expect(await store.congestedUntil(p.model, T)).toBe(T + 334);
      expect(await store.pick(p, T)).toEqual(none(T + 334, 'congested'));
      expect(await store.cool(coolOf(a, 'key', T + 1000.25), T + 0.5)).toBe(T + 1001);
      expect((await store.inspect([a], T + 400))[0].cooldownUntil).toBe(T + 1001);
      expect(store.health().ok).toBe(true);
    });

    describe('budgets', () => {
      test('per key: spent for the minute until the next minute, for the UTC day until the next day', async () => {
        const p = planOf(['a', 'b'], { keyRpm: 2, keyRpd: 3 });
        expect(await picks(store, p, 4, T)).toEqual(['a', 'b', 'a', 'b']);
        expect(await store.pick(p, T)).toEqual(none(MINUTE_END, 'budget'));
        expect(await picks(store, p, 2, MINUTE_END)).toEqual(['a', 'b']);
        expect(await store.pick(p, MINUTE_END)).toEqual(none(DAY_END, 'budget'));
        const seen = await store.inspect([viewOf(p, 'a')], MINUTE_END);
        expect([seen[0].minuteCount, seen[0].dayCount]).toEqual([1, 3]);
        expect(await picks(store, p, 1, DAY_END)).toEqual(['a']);
      });

      test('per account on free models: shared by the account\'s keys and providers, not by paid models', async () => {
        const accounts = { a: 'team', b: 'team' };
        const budgets = { accountRpm: 3, accountRpd: 4 };
        const kimi = planOf(['a', 'b'], { free: true, model: 'vendor/x:free', accounts, ...budgets });
        const qwen = planOf(['b'], { free: true, model: 'vendor/y:free', accounts, provider: 'qwen', ...budgets });
        const paid = planOf(['a'], { model: 'vendor/x', accounts, provider: 'paid' });
        expect(await picks(store, kimi, 3, T)).toEqual(['a', 'b', 'a']);
        expect(await store.pick(kimi, T)).toEqual(none(MINUTE_END, 'budget'));
        expect(await store.pick(qwen, T)).toEqual(none(MINUTE_END, 'budget'));
        expect(await picks(store, paid, 1, T)).toEqual(['a']);
        expect(await picks(store, qwen, 1, MINUTE_END)).toEqual(['b']);
        expect(await store.pick(kimi, MINUTE_END)).toEqual(none(DAY_END, 'budget'));
      });
    });

    test('disabled keys are skipped until reactivated; with all disabled the reason says so', async () => {
      const p = planOf(['a', 'b']);
      const a = viewOf(p, 'a');
      await store.cool(coolOf(a, 'key', T + 9000), T);
      await store.setDisabled('a', 'invalid_key', T);
      expect((await store.inspect([a], T))[0].disabled).toBe('invalid_key');
      await store.setDisabled('b', 'manual', T);
      expect(await store.pick(p, T)).toEqual(none(null, 'disabled'));
      await store.setDisabled('a', null, T);
      // Reactivation also clears the key's own cooldown and its doubling.
      expect((await store.inspect([a], T))[0]).toMatchObject({ disabled: null, cooldownUntil: 0 });
      expect(await picks(store, p, 2, T)).toEqual(['a', 'a']);
      expect(await store.cool(coolOf(a, 'key'), T)).toBe(T + 1000);
    });

    test('resetCooldowns clears the named keys\' gates, their model\'s congestion and doubling, or everything', async () => {
      const p = planOf(['a', 'b', 'c'], { rotating: 0 });
      const [a, b] = [viewOf(p, 'a'), viewOf(p, 'b')];
      await store.cool(coolOf(a, 'key'), T);
      await store.cool(coolOf(a, 'key'), T);
      await store.cool(coolOf(b, 'account', T + 9000), T);
      await store.resetCooldowns([a], T);
      expect(await store.pick(p, T)).toEqual({ keyId: 'a', index: 0, trial: false });
      expect(await store.cool(coolOf(a, 'key'), T)).toBe(T + 1000);
      await store.congest(p.model, T + 9000, 'upstream', T);
      await store.resetCooldowns([a], T);
      expect(await store.congestedUntil(p.model, T)).toBe(0);
      expect((await store.inspect([b], T))[0].cooldownUntil).toBe(T + 9000);
      await store.resetCooldowns(undefined, T);
      expect((await store.inspect([b], T))[0].cooldownUntil).toBe(0);
    });

    test('inspect reports the deadline in force, its reason, the account, recovery and counts', async () => {
      const p = planOf(['a', 'b'], { rotating: 0, accounts: { a: 'team' } });
      const [a, b] = [viewOf(p, 'a'), viewOf(p, 'b')];
      await picks(store, p, 2, T);
      await store.cool(coolOf(a, 'key', T + 2000, 'rate_limited'), T);
      await store.cool(coolOf(a, 'account_model', T + 5000, 'model_cap'), T);
      expect(await store.inspect([a, b], T)).toEqual([
        { disabled: null, cooldownUntil: T + 5000, cooldownReason: 'model_cap', account: 'team', recovering: true, minuteCount: 2, dayCount: 2, learned: [] },
        { disabled: null, cooldownUntil: 0, cooldownReason: null, account: 'key:b', recovering: false, minuteCount: 0, dayCount: 0, learned: [] },
      ]);
      expect(await store.inspect([], T)).toEqual([]);
    });

    describe('learned limits (docs/design.md#learned-limits)', () => {
      test('a learned account limit stops the next pick in its window and frees at the window end; other accounts still pick', async () => {
        const p = planOf(['a1', 'a2', 'b'], { free: true, rotating: 0, accounts: { a1: 'acc', a2: 'acc', b: 'other' } });
        await store.learnLimit(learnOf(viewOf(p, 'a1'), 'account_free', 2, 10_000, W10), T);
        expect(await picks(store, p, 3, T + 1)).toEqual(['a1', 'a1', 'b']);
        // a2 is on the same account: its learned limit holds it too.
        expect(await picks(store, planOf(['a2'], { free: true, accounts: { a2: 'acc' } }), 1, T + 2)).toEqual(['-']);
        expect(await store.pick(planOf(['a2'], { free: true, accounts: { a2: 'acc' } }), T + 2)).toEqual(none(W10, 'budget'));
        // At the window's end the account's trial call first, then its whole window again.
        expect(await picks(store, p, 2, W10)).toEqual(['a1', 'b']);
        await store.succeed(viewOf(p, 'a1'), W10);
        expect(await picks(store, p, 3, W10 + 1)).toEqual(['a1', 'b', 'b']);
      });

      test('a learned key limit holds only its key, for every model; a paid plan skips the account-free limit', async () => {
        const p = planOf(['a', 'b'], { rotating: 0 });
        await store.learnLimit(learnOf(viewOf(p, 'a'), 'key', 1, 10_000, W10), T);
        expect(await picks(store, p, 2, T + 1)).toEqual(['a', 'b']);
        const free = planOf(['x'], { free: false, accounts: { x: 'acc' } });
        await store.learnLimit(learnOf({ keyId: 'x', account: 'acc', model: free.model, free: true }, 'account_free', 1, 10_000, W10), T);
        expect(await picks(store, free, 2, T + 1)).toEqual(['x', 'x']);
      });

      test('a refunded call (not served upstream) stops counting in its window', async () => {
        const p = planOf(['a'], { free: true, accounts: { a: 'acc' } });
        await store.learnLimit(learnOf(viewOf(p, 'a'), 'account_free', 2, 10_000, W10), T);
        expect(await picks(store, p, 3, T + 1)).toEqual(['a', 'a', '-']);
        await store.refund(viewOf(p, 'a'), T + 1);
        expect(await picks(store, p, 2, T + 2)).toEqual(['a', '-']);
        // A refund for a window already over changes nothing in the current one.
        await picks(store, p, 2, W10);
        await store.refund(viewOf(p, 'a'), T + 1);
        expect(await picks(store, p, 1, W10 + 1)).toEqual(['-']);
      });

      test('a relearn in a later window lengthens a window guessed too short; one in the same window keeps it', async () => {
        const p = planOf(['a'], { free: true, accounts: { a: 'acc' } });
        const v = viewOf(p, 'a');
        // T+6 s: the reset 4 s ahead looks like a 5 s window (12:30:20 is on a 5 s boundary).
        await store.learnLimit(learnOf(v, 'account_free', 5, 5_000, W10), T + 6_000);
        await store.learnLimit(learnOf(v, 'account_free', 5, 5_000, W10), T + 6_500);
        expect((await store.inspect([v], T + 6_500))[0].learned).toMatchObject([{ gate: 'f:acc', limit: 5, windowMs: 5_000, source: '429', used: 0 }]);
        // The next 429 comes in a later 5 s window: the window was too short.
        await store.learnLimit(learnOf(v, 'account_free', 5, 5_000, W10 + 10_000), W10 + 5_500);
        expect((await store.inspect([v], W10 + 5_500))[0].learned).toMatchObject([{ gate: 'f:acc', limit: 5, windowMs: 10_000, learnedAt: W10 + 5_500 }]);
      });

      test('a GET /key relearn replaces the window as it is: periodic probes never lengthen it', async () => {
        const p = planOf(['a'], { accounts: { a: 'acc' } });
        const v = viewOf(p, 'a');
        // A key_probe lesson of a 10 s window, probed at T and again in three later windows.
        for (const at of [T, W10 + 1_000, W10 + 11_000, W10 + 21_000]) {
          await store.learnLimit(learnOf(v, 'key', 10, 10_000, (Math.floor(at / 10_000) + 1) * 10_000, 'key_probe'), at);
          expect((await store.inspect([v], at))[0].learned).toMatchObject([{ gate: 'k:a', limit: 10, windowMs: 10_000, source: 'key_probe', learnedAt: at }]);
        }
      });

      test('a fractional learned window (1000.3 ms) still picks, counts and stops; the store stays healthy', async () => {
        const p = planOf(['a'], { accounts: { a: 'acc' } });
        const v = viewOf(p, 'a');
        await store.learnLimit(learnOf(v, 'key', 2, 1000.3, T + 1000.3, 'key_probe'), T);
        expect(await picks(store, p, 3, T)).toEqual(['a', 'a', '-']);
        expect(store.health().ok).toBe(true);
        await store.refund(v, T);
        expect(await picks(store, p, 1, T)).toEqual(['a']);
        expect(store.health().ok).toBe(true);
      });

      test('a minute limit and a day limit of one scope both hold; a learned limit expires after a day', async () => {
        const p = planOf(['a'], { free: true, accounts: { a: 'acc' } });
        const v = viewOf(p, 'a');
        await store.learnLimit(learnOf(v, 'account_free', 3, 60_000, MINUTE_END), T);
        await store.learnLimit(learnOf(v, 'account_free', 4, 86_400_000, DAY_END), T);
        expect(await picks(store, p, 4, T)).toEqual(['a', 'a', 'a', '-']);
        expect(await picks(store, p, 2, MINUTE_END)).toEqual(['a', '-']);
        expect(await store.pick(p, MINUTE_END)).toEqual(none(DAY_END, 'budget'));
        const seen = (await store.inspect([v], MINUTE_END))[0].learned.map((l) => [l.windowMs, l.limit, l.used]).sort((x, y) => x[0] - y[0]);
        expect(seen).toEqual([[60_000, 3, 1], [86_400_000, 4, 4]]);
        const later = T + 86_400_000;
        expect((await store.inspect([v], later))[0].learned).toEqual([]);
        expect(await picks(store, p, 5, later)).toEqual(['a', 'a', 'a', 'a', 'a']);
      });
    });
  });
}
