/**
 * Paced recovery and fair sharing over HTTP (docs/design.md#the-outcome-table): orche and the simulator share a clock that
 * runs at real speed from a chosen instant, so windows of 1 s fall where the test expects them.
 * Asserted: orders and counts, never durations.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Env } from '../../../config';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';
import { RedisStore } from '../../../providers/store/redis';
import { endUserHash } from '../../../server/limits/endUsers';

/** A Redis store must be connected before the test: until then orche serves from its local state. */
async function storeUp(s: Stack): Promise<void> {
  const store = s.orche.ctx.pool.store;
  if (store instanceof RedisStore) expect(await store.connected()).toBe(true);
}

const KEY = 'sk-or-v1-pacing-key-one-0001';
const MODEL = 'z-ai/glm-4.5:free';
const W = 1_000;
const HEAVY = 'pacing-heavy-token-0001';
const LIGHT = 'pacing-light-token-0002';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

/** A clock at real speed that starts `intoWindow` ms into a window of W. */
function runningClock(intoWindow: number): () => number {
  const start = Date.now();
  const base = Date.UTC(2026, 10, 22, 12, 30, 10) + intoWindow;
  return () => base + (Date.now() - start);
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rules(storeEnv: () => Env): void {
  test('waiting requests go when the window resets, clients in turn, never more than the learned limit at once', async () => {
    const now = runningClock(200);
    stack = await startStack(
      {
        PROVIDER_GLM45_MODEL: MODEL, PROVIDER_GLM45_API_KEY: `user_p:${KEY}`, ORCHE_MAX_WAIT_MS: '5000', ORCHE_MINUTE_MS: String(W),
        ORCHE_CLIENT_TOKENS: `${HEAVY},${LIGHT}`, ...storeEnv(),
      },
      { now, windowMs: W, accounts: [{ id: 'user_p', freeRpm: 2, freeRpd: 1000 }], keys: [{ key: KEY, account: 'user_p' }] },
      { now },
    );
    const s = stack;
    await storeUp(s);
    const send = (token: string) => s.http.post('/v1/chat/completions').set('Authorization', `Bearer ${token}`).send({ model: 'glm45', messages: hi });
    // The window's two calls, then a third: upstream's 429 teaches the limit; that request waits.
    expect((await send(HEAVY)).status).toBe(200);
    expect((await send(HEAVY)).status).toBe(200);
    const order: string[] = [];
    const track = (name: string, token: string) => send(token).then((r) => {
      order.push(`${name}:${r.status}`);
    });
    const waiting: Array<Promise<void>> = [track('h0', HEAVY)];
    await delay(30);
    // The heavy client asks four more times, then the light one twice: all wait behind h0.
    for (const name of ['h1', 'h2', 'h3', 'h4']) {
      waiting.push(track(name, HEAVY));
      await delay(15);
    }
    for (const name of ['l1', 'l2']) {
      waiting.push(track(name, LIGHT));
      await delay(15);
    }
    await Promise.all(waiting);
    // On a tie of served counts the lighter client (fewer waiting) goes first.
    expect(order).toEqual(['l1:200', 'h0:200', 'l2:200', 'h1:200', 'h2:200', 'h3:200', 'h4:200']);
    const calls = s.sim.calls;
    expect(calls.filter((c) => c.status === 429)).toHaveLength(1);
    // Never more than two served per window: the release followed the learned limit.
    const perWindow = new Map<number, number>();
    for (const c of calls.filter((x) => x.status === 200)) perWindow.set(Math.floor(c.at / W), (perWindow.get(Math.floor(c.at / W)) ?? 0) + 1);
    expect(Math.max(...perWindow.values())).toBe(2);
  }, 15_000);

  test('slow start: after a 429 that teaches no limit, the upstream sees 1 call in flight, then at most 2, then at most 4', async () => {
    // A slow upstream, so calls overlap when orche lets them; real clocks on both sides.
    stack = await startStack(
      { PROVIDER_GLM45_MODEL: MODEL, PROVIDER_GLM45_API_KEY: KEY, ORCHE_MAX_WAIT_MS: '8000', ORCHE_REQUEST_TIMEOUT_MS: '8000', ...storeEnv() },
      { keys: [{ key: KEY }], latencyMs: 150 },
    );
    const s = stack;
    await storeUp(s);
    // A bare 429 with Retry-After: it says when, not how many, so no limit is learned.
    s.sim.addRule({ type: 'generic-429', times: 1, retryAfterSeconds: 1 });
    const send = () => s.http.post('/v1/chat/completions').send({ model: 'glm45', messages: hi }).then((r) => r.status);
    const first = send();
    await delay(250);
    const rest = Array.from({ length: 8 }, () => send());
    expect(await Promise.all([first, ...rest])).toEqual(Array(9).fill(200));
    const calls = s.sim.calls;
    expect(calls[0].status).toBe(429);
    const after = calls.slice(1).map((c) => c.inFlight);
    expect(after).toHaveLength(9);
    // One trial call, then a round of at most 2, then of at most 4 (each success allows one more).
    expect(after[0]).toBe(1);
    expect(Math.max(...after.slice(1, 3))).toBeLessThanOrEqual(2);
    expect(Math.max(...after.slice(3, 7))).toBeLessThanOrEqual(4);
    // And it does widen: the calls are not sent one by one.
    expect(Math.max(...after)).toBeGreaterThanOrEqual(2);
  }, 15_000);

  test('end users: X-Orche-User or OpenAI user share turns and have their own limits; /api/usage lists them', async () => {
    const now = () => Date.UTC(2026, 10, 22, 12, 30, 10);
    stack = await startStack(
      { PROVIDER_GLM45_MODEL: MODEL, PROVIDER_GLM45_API_KEY: KEY, ORCHE_USER_RPM: '2', ...storeEnv() },
      { now, keys: [{ key: KEY }] },
      { now },
    );
    const s = stack;
    await storeUp(s);
    const ask = (user: { header?: string; field?: string }) => {
      const req = s.http.post('/v1/chat/completions');
      if (user.header) req.set('X-Orche-User', user.header);
      return req.send({ model: 'glm45', messages: hi, ...(user.field ? { user: user.field } : {}) });
    };
    expect((await ask({ header: 'alice' })).status).toBe(200);
    expect((await ask({ field: 'alice' })).status).toBe(200);
    const third = await ask({ header: 'alice' });
    expect(third.status).toBe(429);
    expect(third.body.error.type).toBe('user_rate_limited');
    expect(third.headers['retry-after']).toBe('50');
    expect((await ask({ field: 'bob' })).status).toBe(200);
    // /api/chat takes the same field, and passes it upstream as OpenAI's `user`.
    const viaApi = await s.http.post('/api/chat').send({ provider: 'glm45', messages: hi, user: 'alice' });
    expect(viaApi.status).toBe(429);
    expect((await s.http.post('/api/chat').send({ provider: 'glm45', messages: hi, user: 'carol' })).status).toBe(200);
    expect((s.sim.calls.at(-1)!.body as { user?: string }).user).toBe('carol');
    // Requests that name no user are not limited per user.
    for (let i = 0; i < 3; i++) expect((await ask({})).status).toBe(200);
    expect(s.sim.calls).toHaveLength(7);
    const usage = await s.http.get('/api/usage');
    expect(usage.body.end_users).toMatchObject({ tracked: 3, max_tracked: 10_000 });
    expect(usage.body.end_users.users.map((u: { user: string; calls_this_minute: number; successes: number; failures: number; rate_limited: number }) => [u.user, u.calls_this_minute, u.successes, u.failures, u.rate_limited])).toEqual([
      // By the hash of each name (docs/design.md#blame-on-evidence), shown to the client address that named them.
      [endUserHash('carol'), 1, 1, 0, 0],
      [endUserHash('alice'), 2, 2, 0, 2],
      [endUserHash('bob'), 1, 1, 0, 0],
    ]);
  });
}

describe('paced recovery, slow start, fair turns and end-user limits: memory store', () => rules(() => ({})));
describe('paced recovery, slow start, fair turns and end-user limits: snapshot store', () => rules(() => ({ ORCHE_STATE_FILE: join(mkdtempSync(join(tmpdir(), 'orche-pacing-')), 'state.json') })));
describeRedis('paced recovery, slow start, fair turns and end-user limits: Redis store', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropPrefix(p);
  });
  rules(() => {
    const prefix = uniquePrefix('pacing');
    prefixes.push(prefix);
    return { REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
  });

  test('end-user limits hold across two instances on one Redis', async () => {
    const prefix = uniquePrefix('pacing-users');
    prefixes.push(prefix);
    let t = Date.UTC(2026, 10, 22, 12, 30, 10);
    const now = () => t;
    const env = { PROVIDER_GLM45_MODEL: MODEL, PROVIDER_GLM45_API_KEY: KEY, ORCHE_USER_RPM: '3', ORCHE_USER_RPD: '5', REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
    stack = await startStack(env, { now, keys: [{ key: KEY }] }, { now });
    const one = stack;
    const two = await startStack(env, { now, keys: [{ key: KEY }] }, { now });
    try {
      await storeUp(one);
      await storeUp(two);
      const ask = (s: Stack, user: string) => s.http.post('/v1/chat/completions').set('X-Orche-User', user).send({ model: 'glm45', messages: hi });
      // alice's three calls this minute, spread over both instances; the fourth is refused on either.
      expect((await ask(one, 'alice')).status).toBe(200);
      expect((await ask(two, 'alice')).status).toBe(200);
      expect((await ask(one, 'alice')).status).toBe(200);
      const refused = await ask(two, 'alice');
      expect(refused.status).toBe(429);
      expect(refused.body.error.type).toBe('user_rate_limited');
      expect(refused.headers['retry-after']).toBe('50');
      expect((await ask(one, 'alice')).status).toBe(429);
      // Another user has a budget of his own.
      expect((await ask(two, 'bob')).status).toBe(200);
      // The next minute: two more make alice's five of the day, then the day's limit refuses her until midnight UTC.
      t += 60_000;
      expect((await ask(two, 'alice')).status).toBe(200);
      expect((await ask(one, 'alice')).status).toBe(200);
      const daily = await ask(two, 'alice');
      expect(daily.status).toBe(429);
      expect(daily.headers['retry-after']).toBe(String((Date.UTC(2026, 10, 23) - t) / 1000));
      expect(one.sim.calls.length + two.sim.calls.length).toBe(6);
    } finally {
      await two.close();
    }
  });
});

test('a cooldown reset wakes the line at once: a waiting request is served without waiting for the old deadline', async () => {
  // A fixed clock: nothing but the reset can end this wait before the test times out.
  const now = () => Date.UTC(2026, 10, 22, 12, 30, 10);
  stack = await startStack(
    { PROVIDER_GLM45_MODEL: MODEL, PROVIDER_GLM45_API_KEY: KEY, ORCHE_MAX_WAIT_MS: '5000', ORCHE_ADMIN_TOKEN: 'admin-token-for-pacing' },
    { now, keys: [{ key: KEY, rpm: 1 }] },
    { now },
  );
  const s = stack;
  expect((await s.http.post('/v1/chat/completions').send({ model: 'glm45', messages: hi })).status).toBe(200);
  s.sim.addRule({ type: 'generic-429', times: 1, retryAfterSeconds: 3 });
  s.sim.resetCounters();
  const waiting = s.http.post('/v1/chat/completions').send({ model: 'glm45', messages: hi }).then((r) => r.status);
  await new Promise((r) => setTimeout(r, 100));
  expect((await s.http.post('/api/keys/reset').set('Authorization', 'Bearer admin-token-for-pacing')).status).toBe(200);
  expect(await waiting).toBe(200);
  expect(s.sim.calls.map((c) => c.status)).toEqual([200, 429, 200]);
}, 4_000);
