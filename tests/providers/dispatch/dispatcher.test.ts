/**
 * The retry loop with fake attempts (Outcome objects, no HTTP), a fake clock, a recording sleep and an
 * injected random.
 */
import type { ProviderConfig, RotationConfig } from '../../../config';
import { backoffDelay } from '../../../providers/dispatch/backoff';
import { Dispatcher, type AttemptContext } from '../../../providers/dispatch/dispatcher';
import {
  AllKeysRateLimitedError,
  NoUsableKeysError,
  UpstreamError,
  UpstreamRateLimitedError,
  UpstreamRejectedError,
} from '../../../providers/errors';
import { KeyPool } from '../../../providers/keys/keyPool';
import type { Outcome } from '../../../providers/limits/rateLimit';
import { MemoryStore } from '../../../providers/store/memory';
import { PAID_MODEL_2, POOL_OPTIONS, ROTATION, T0, key, keys, namer, outcome, provider, recordEvents } from '../../helpers/poolFixtures';

function harness(providers: ProviderConfig[], rotation: Partial<RotationConfig> = {}, random: () => number = () => 0.5) {
  const clock = { now: T0 };
  const sleeps: number[] = [];
  const pool = new KeyPool(providers, new MemoryStore(), POOL_OPTIONS);
  const events = recordEvents(pool);
  const dispatcher = new Dispatcher(pool, { ...ROTATION, ...rotation }, {
    now: () => clock.now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      clock.now += ms;
    },
    random,
  });
  const allKeys = providers.flatMap((p) => p.keys);
  const name = namer(...allKeys);
  const calls: Array<{ provider: string; key: string | null; at: number }> = [];
  /** An attempt that answers by the key's fixture name (and provider), and records each call. */
  function attempt(answer: (keyName: string, provider: string, ctx: AttemptContext) => Outcome) {
    return async (ctx: AttemptContext) => {
      const keyName = name(ctx.keyId)!;
      calls.push({ provider: ctx.provider.config.slug, key: keyName, at: clock.now });
      // The secret handed to the attempt is the key's own.
      if (ctx.key !== `sk-or-v1-test-${keyName}`) throw new Error('wrong secret for key');
      const o = answer(keyName, ctx.provider.config.slug, ctx);
      return { outcome: o, value: o.kind === 'success' ? `${ctx.provider.config.slug}:${keyName}` : undefined };
    };
  }
  return { clock, sleeps, pool, events, dispatcher, calls, attempt, name, rt: (slug: string) => pool.get(slug)! };
}

async function rejection(p: Promise<unknown>): Promise<Error & { status: number; type: string; extra: Record<string, unknown>; headers: Record<string, string> }> {
  try {
    await p;
  } catch (e) {
    return e as never;
  }
  throw new Error('expected a rejection');
}

describe('Dispatcher', () => {
  test('no limit known and nobody waiting: a served request writes no served count (fair release does not need it; on Redis it is a round trip)', async () => {
    const h = harness([provider('kimi', keys('a'))]);
    for (let i = 0; i < 3; i++) await h.dispatcher.run('kimi', h.attempt(() => outcome.success()), undefined, 'c1');
    expect(h.calls).toHaveLength(3);
    expect(await h.pool.store.fair.served('kimi', Math.floor(T0 / 60_000), ['c1'], [])).toEqual({ clients: [0], users: [] });
  });

  test("a cool outcome moves to the next key at once, with no sleep, and emits one 'rotated' event {from,to,reason}", async () => {
    const ks = keys('a', 'b', 'c');
    const h = harness([provider('kimi', ks)]);
    const result = await h.dispatcher.run('kimi', h.attempt((k) => (k === 'a' ? outcome.cool('key', T0 + 30_000) : outcome.success())));
    expect(result.value).toBe('kimi:b');
    expect(result.keyId).toBe(ks[1].id);
    expect(result.attempts).toBe(2);
    expect(h.sleeps).toEqual([]);
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'b']);
    expect(h.events.rotated).toEqual([{ at: T0, provider: 'kimi', from: ks[0].id, to: ks[1].id, reason: 'rate_limited' }]);
  });

  test('a disable outcome (401) moves to the next key at once, with no sleep', async () => {
    const ks = keys('a', 'b');
    const h = harness([provider('kimi', ks)]);
    const result = await h.dispatcher.run('kimi', h.attempt((k) => (k === 'a' ? outcome.disable('invalid_key') : outcome.success())));
    expect(result.value).toBe('kimi:b');
    expect(h.sleeps).toEqual([]);
    expect(h.events.rotated).toEqual([{ at: T0, provider: 'kimi', from: ks[0].id, to: ks[1].id, reason: 'invalid_key' }]);
    expect(h.events.disabled).toEqual([{ at: T0, provider: 'kimi', keyId: ks[0].id, reason: 'invalid_key' }]);
  });

  test('retry outcomes back off exponentially (base doubling, capped at max), lower jitter bound with random()=0', async () => {
    const h = harness([provider('kimi', keys('a', 'b', 'c'))], { maxAttempts: 5, backoffBaseMs: 1_000, backoffMaxMs: 3_000 }, () => 0);
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.retry(502))));
    // exp = 1000, 2000, 4000→3000, 8000→3000; delay = exp/2 + random·exp/2
    expect(h.sleeps).toEqual([500, 1_000, 1_500, 1_500]);
    expect(h.calls).toHaveLength(5);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.status).toBe(502);
    expect(err.extra).toMatchObject({ upstream_status: 502, attempts: 5 });
  });

  test('retry backoff: upper jitter bound with random()→1', async () => {
    const h = harness([provider('kimi', keys('a', 'b', 'c'))], { maxAttempts: 5, backoffBaseMs: 1_000, backoffMaxMs: 3_000 }, () => 0.999999);
    await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.retry(503))));
    expect(h.sleeps).toEqual([1_000, 2_000, 3_000, 3_000]);
  });

  test('retries stop at ORCHE_MAX_ATTEMPTS (4 calls, 3 sleeps, no sleep after the last)', async () => {
    const h = harness([provider('kimi', keys('a', 'b'))], { maxAttempts: 4, backoffBaseMs: 100, backoffMaxMs: 10_000 }, () => 0.5);
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.retry(500))));
    expect(h.calls).toHaveLength(4);
    expect(h.sleeps).toEqual([75, 150, 300]);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.extra.attempts).toBe(4);
  });

  test('a retry goes to another usable key, after one backoff', async () => {
    const ks = keys('a', 'b', 'c');
    const h = harness([provider('kimi', ks)], {}, () => 0.5);
    const result = await h.dispatcher.run('kimi', h.attempt((k) => (k === 'a' ? outcome.retry(502) : outcome.success())));
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'b']);
    expect(h.sleeps).toEqual([750]);
    expect(result.attempts).toBe(2);
    expect(result.value).toBe('kimi:b');
  });

  // docs/design.md#picking-a-key: reserve keys serve only when every non-reserve key is unusable; a key this request just
  // saw fail (5xx, timeout) is still usable for that rule. The retry used to land on the paid reserve.
  test.each([
    ['failover', 'failover' as const],
    ['round-robin', 'round-robin' as const],
  ])('%s: after a 5xx the retry goes to the same non-reserve key when no other is usable, not to the reserve', async (_name, strategy) => {
    const a = key('a', { role: 'primary' });
    const b = key('b');
    const r = key('r', { role: 'reserve' });
    const h = harness([provider('kimi', [a, b, r], { strategy })], {}, () => 0.5);
    await h.pool.report(h.rt('kimi'), b.id, outcome.cool('key', T0 + 600_000), 10, T0);
    let first = true;
    const result = await h.dispatcher.run('kimi', h.attempt(() => (first ? ((first = false), outcome.retry(502)) : outcome.success())));
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'a']);
    expect(result.value).toBe('kimi:a');
  });

  test('after a 5xx the retry prefers another non-reserve key over the failed one, and never the reserve', async () => {
    const a = key('a', { role: 'primary' });
    const b = key('b');
    const r = key('r', { role: 'reserve' });
    const h = harness([provider('kimi', [a, b, r], { strategy: 'failover' })], {}, () => 0.5);
    const result = await h.dispatcher.run('kimi', h.attempt((k) => (k === 'a' ? outcome.retry(502) : outcome.success())));
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'b']);
    expect(result.value).toBe('kimi:b');
  });

  // An answer that arrives just as the client leaves is still the key's answer: a success counts as a
  // success (not a client error), a 429 still cools the key. Only then is the client gone.
  test.each([
    ['success', outcome.success(), 'success'],
    ['429', outcome.cool('key', T0 + 60_000), 'cool'],
  ])('a %s arriving as the client leaves is recorded as such, then the request ends as client gone', async (_name, answer, kind) => {
    const ks = keys('a', 'b');
    const h = harness([provider('kimi', ks)]);
    const client = new AbortController();
    const err = await rejection(
      h.dispatcher.run(
        'kimi',
        h.attempt(() => {
          client.abort();
          return answer;
        }),
        client.signal,
      ),
    );
    expect(err.status).toBe(499);
    expect(h.events.outcome.map((e) => e.kind)).toEqual([kind]);
    const [a] = await h.pool.keyStatuses(h.rt('kimi'), T0);
    expect([a.state, a.successes, a.rate_limited]).toEqual(kind === 'success' ? ['active', 1, 0] : ['cooling', 0, 1]);
  });

  test('every key cooling, soonest recovery within maxWaitMs → sleeps until then and succeeds', async () => {
    const ks = keys('a', 'b');
    const h = harness([provider('kimi', ks)], { maxWaitMs: 3_000 });
    const p = h.rt('kimi');
    await h.pool.report(p, ks[0].id, outcome.cool('key', T0 + 2_500), 10, T0);
    await h.pool.report(p, ks[1].id, outcome.cool('key', T0 + 60_000), 10, T0);
    const result = await h.dispatcher.run('kimi', h.attempt(() => outcome.success()));
    expect(h.sleeps).toEqual([2_500]);
    expect(h.calls).toEqual([{ provider: 'kimi', key: 'a', at: T0 + 2_500 }]);
    expect(result.attempts).toBe(1);
    expect(result.value).toBe('kimi:a');
    // It was the key's probe, and the probe succeeded.
    expect(h.events.recovered).toEqual([{ at: T0 + 2_500, provider: 'kimi', keyId: ks[0].id }]);
  });

  test('keys that 429 one after another during a request: it waits for the soonest recovery within maxWaitMs', async () => {
    const ks = keys('a', 'b');
    const h = harness([provider('kimi', ks)], { maxWaitMs: 3_000 });
    let first = true;
    const result = await h.dispatcher.run(
      'kimi',
      h.attempt((k) => {
        if (k === 'a' && first) {
          first = false;
          return outcome.cool('key', T0 + 1_000);
        }
        if (k === 'b') return outcome.cool('key', T0 + 60_000);
        return outcome.success();
      }),
    );
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'b', 'a']);
    expect(h.sleeps).toEqual([1_000]);
    expect(result.attempts).toBe(3);
  });

  // Slow start (docs/design.md#pacing-and-fairness) restarts only after a 429 that taught no limit. A 403 key cap or a 402
  // in-flight budget also cools a key, yet says nothing about the rate: it used to throttle the
  // provider's whole wait room to one call in flight.
  test.each([
    ['429 with no X-RateLimit-Limit', 1, { ...outcome.cool('key', T0 + 1_000), status: 429 }],
    ['429 that teaches a limit', Infinity, { ...outcome.cool('key', T0 + 1_000), rate: { limit: 5, remaining: 0, resetAt: T0 + 1_000 } }],
    ['403 key cap', Infinity, { ...outcome.cool('key', T0 + 1_000, 'key_cap'), status: 403 }],
    ['402 in-flight budget', Infinity, { ...outcome.cool('account', T0 + 1_000, 'in_flight_budget'), status: 402 }],
  ] as Array<[string, number, Outcome]>)('a request that waits after a %s: the wait room then lets %p call(s) be in flight', async (_name, concurrency, cooled) => {
    const ks = keys('a');
    const h = harness([provider('kimi', ks)], { maxWaitMs: 3_000 });
    const seen: number[] = [];
    const result = await h.dispatcher.run(
      'kimi',
      h.attempt(() => {
        if (h.calls.length === 1) return cooled;
        seen.push(h.dispatcher.room(h.rt('kimi')).concurrency);
        return outcome.success();
      }),
    );
    expect(result.attempts).toBe(2);
    expect(h.sleeps).toEqual([1_000]);
    expect(seen).toEqual([concurrency]);
  });

  test('every key cooling beyond maxWaitMs → AllKeysRateLimitedError 429 with Retry-After (s, rounded up) and retry_after_ms', async () => {
    const ks = keys('a', 'b');
    const h = harness([provider('kimi', ks)], { maxWaitMs: 3_000 });
    const p = h.rt('kimi');
    await h.pool.report(p, ks[0].id, outcome.cool('key', T0 + 10_400), 10, T0);
    await h.pool.report(p, ks[1].id, outcome.cool('key', T0 + 12_000), 10, T0);
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.success())));
    expect(err).toBeInstanceOf(AllKeysRateLimitedError);
    expect(err.status).toBe(429);
    expect(err.type).toBe('all_keys_rate_limited');
    expect(err.headers).toEqual({ 'Retry-After': '11' });
    expect(err.extra).toEqual({ provider: 'kimi', retry_after_ms: 10_400 });
    expect(h.calls).toEqual([]);
    expect(h.sleeps).toEqual([]);
  });

  test('congested with a fallback provider → the answer comes from the fallback and no key of the first provider cools', async () => {
    const kimiKeys = keys('a', 'b');
    const g = key('g', { role: 'primary' });
    const h = harness([provider('kimi', kimiKeys, { fallback: 'glm45' }), provider('glm45', [g], { model: PAID_MODEL_2 })]);
    const result = await h.dispatcher.run('kimi', h.attempt((_k, prov) => (prov === 'kimi' ? outcome.congested(T0 + 20_000) : outcome.success())));
    expect(result.provider.config.slug).toBe('glm45');
    expect(result.value).toBe('glm45:g');
    expect(result.keyId).toBe(g.id);
    expect(result.attempts).toBe(2);
    expect(h.calls.map((c) => `${c.provider}:${c.key}`)).toEqual(['kimi:a', 'glm45:g']);
    expect(h.sleeps).toEqual([]);
    expect(h.events.cooled).toEqual([]);
    const statuses = await h.pool.keyStatuses(h.rt('kimi'), h.clock.now);
    expect(statuses.map((s) => [s.state, s.cooldown_remaining_ms])).toEqual([
      ['active', 0],
      ['active', 0],
    ]);
  });

  test('every key cooling with a fallback provider → the fallback answers at once, no wait', async () => {
    const kimiKeys = keys('a', 'b');
    const g = key('g', { role: 'primary' });
    const h = harness([provider('kimi', kimiKeys, { fallback: 'glm45' }), provider('glm45', [g], { model: PAID_MODEL_2 })], { maxWaitMs: 3_000 });
    const p = h.rt('kimi');
    await h.pool.report(p, kimiKeys[0].id, outcome.cool('key', T0 + 1_000), 10, T0);
    await h.pool.report(p, kimiKeys[1].id, outcome.cool('key', T0 + 2_000), 10, T0);
    const result = await h.dispatcher.run('kimi', h.attempt(() => outcome.success()));
    expect(result.value).toBe('glm45:g');
    expect(result.attempts).toBe(1);
    expect(h.sleeps).toEqual([]);
  });

  test('congested beyond maxWaitMs with no fallback → UpstreamRateLimitedError 429 upstream_rate_limited', async () => {
    const h = harness([provider('kimi', keys('a', 'b'))], { maxWaitMs: 3_000 });
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.congested(T0 + 20_000))));
    expect(err).toBeInstanceOf(UpstreamRateLimitedError);
    expect(err.status).toBe(429);
    expect(err.type).toBe('upstream_rate_limited');
    expect(err.extra).toMatchObject({ provider: 'kimi', retry_after_ms: 20_000 });
    expect(err.headers).toEqual({ 'Retry-After': '20' });
    expect(h.calls).toHaveLength(1);
    expect(h.events.cooled).toEqual([]);
  });

  test('every key disabled → NoUsableKeysError 503, no call', async () => {
    const ks = keys('a', 'b');
    const h = harness([provider('kimi', ks)]);
    const p = h.rt('kimi');
    await h.pool.report(p, ks[0].id, outcome.disable('invalid_key'), 10, T0);
    await h.pool.report(p, ks[1].id, outcome.disable('insufficient_credits'), 10, T0);
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.success())));
    expect(err).toBeInstanceOf(NoUsableKeysError);
    expect(err.status).toBe(503);
    expect(err.type).toBe('no_usable_keys');
    expect(h.calls).toEqual([]);
  });

  test('keys disabled one after another during a request → NoUsableKeysError 503 after trying each once', async () => {
    const h = harness([provider('kimi', keys('a', 'b'))]);
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.disable('invalid_key'))));
    expect(err).toBeInstanceOf(NoUsableKeysError);
    expect(err.status).toBe(503);
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'b']);
    expect(h.sleeps).toEqual([]);
  });

  test('client_error → UpstreamRejectedError with the upstream status, no retry', async () => {
    const h = harness([provider('kimi', keys('a', 'b'))]);
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.clientError(400))));
    expect(err).toBeInstanceOf(UpstreamRejectedError);
    expect(err.status).toBe(400);
    expect(err.type).toBe('upstream_rejected');
    expect(h.calls).toHaveLength(1);
    expect(h.sleeps).toEqual([]);
    expect(h.events.cooled).toEqual([]);
  });

  test('moderation 403 → UpstreamRejectedError type moderation, no retry', async () => {
    const h = harness([provider('kimi', keys('a', 'b'))]);
    const err = await rejection(h.dispatcher.run('kimi', h.attempt(() => outcome.clientError(403, 'moderation'))));
    expect(err).toBeInstanceOf(UpstreamRejectedError);
    expect(err.status).toBe(403);
    expect(err.type).toBe('moderation');
    expect(h.calls).toHaveLength(1);
  });
});

describe('backoffDelay', () => {
  test('base doubling, capped at max, with random 0 / 0.5 / 1', () => {
    expect([1, 2, 3, 4, 5, 6].map((r) => backoffDelay(r, 1_000, 10_000, () => 0))).toEqual([500, 1_000, 2_000, 4_000, 5_000, 5_000]);
    expect([1, 2, 3, 4, 5, 6].map((r) => backoffDelay(r, 1_000, 10_000, () => 0.5))).toEqual([750, 1_500, 3_000, 6_000, 7_500, 7_500]);
    expect([1, 2, 3, 4, 5, 6].map((r) => backoffDelay(r, 1_000, 10_000, () => 1))).toEqual([1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  });

  test('jitter always within [exp/2, exp]', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let retry = 1; retry <= 8; retry++) {
      const exp = Math.min(10_000, 1_000 * 2 ** (retry - 1));
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(retry, 1_000, 10_000, random);
        expect(d).toBeGreaterThanOrEqual(exp / 2);
        expect(d).toBeLessThanOrEqual(exp);
      }
    }
  });
});
