/**
 * Fair, paced release over HTTP (docs/design.md#pacing-and-fairness): two client tokens share one account's learned
 * limit. orche and the simulator share a clock that runs at real speed from a chosen instant, so
 * windows fall where the test expects them. Asserted: orders, counts and windows, never durations.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Env } from '../../../config';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';
import { RedisStore } from '../../../providers/store/redis';

const KEY = 'sk-or-v1-fairness-key-one-0001';
const MODEL = 'z-ai/glm-4.5:free';
const HEAVY = 'fairness-heavy-token-0001';
const LIGHT = 'fairness-light-token-0002';

let stacks: Stack[] = [];
afterEach(async () => {
  for (const s of stacks) await s.close();
  stacks = [];
});

/** A clock at real speed that starts `intoWindow` ms into a window of `w`. */
function runningClock(w: number, intoWindow: number): () => number {
  const start = Date.now();
  const base = Math.ceil(Date.UTC(2026, 10, 22, 12, 30, 10) / w) * w + intoWindow;
  return () => base + (Date.now() - start);
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stackOf(storeEnv: Env, w: number, perWindow: number, now: () => number, extra: Env = {}): Promise<Stack> {
  const s = await startStack(
    {
      PROVIDER_GLM45_MODEL: MODEL, PROVIDER_GLM45_API_KEY: `user_f:${KEY}`, ORCHE_MINUTE_MS: String(w),
      ORCHE_CLIENT_TOKENS: `${HEAVY},${LIGHT}`, ...storeEnv, ...extra,
    },
    { now, windowMs: w, accounts: [{ id: 'user_f', freeRpm: perWindow, freeRpd: 100_000 }], keys: [{ key: KEY, account: 'user_f' }] },
    { now },
  );
  stacks.push(s);
  const store = s.orche.ctx.pool.store;
  if (store instanceof RedisStore) expect(await store.connected()).toBe(true);
  return s;
}

function send(s: Stack, token: string, user?: string) {
  const req = s.http.post('/v1/chat/completions').set('Authorization', `Bearer ${token}`);
  if (user !== undefined) req.set('X-Orche-User', user);
  return req.send({ model: 'glm45', messages: hi });
}

/** Spends the window's budget with the heavy client, then one more call, whose 429 teaches the limit: that request waits. */
async function fillWindow(s: Stack, perWindow: number, track: (name: string, token: string, user?: string) => Promise<void>): Promise<{ first: Promise<void> }> {
  for (let i = 0; i < perWindow; i++) expect((await send(s, HEAVY)).status).toBe(200);
  const first = track('h0', HEAVY);
  await delay(40);
  return { first };
}

function rules(storeEnv: () => Env): void {
  test('a new end-user name per request buys no turns: the other client goes next, not behind them', async () => {
    const W = 1000;
    const now = runningClock(W, 100);
    const s = await stackOf(storeEnv(), W, 2, now, { ORCHE_MAX_WAIT_MS: '2500' });
    const served: string[] = [];
    const results = new Map<string, number>();
    const track = (name: string, token: string, user?: string) => send(s, token, user).then((r) => {
      results.set(name, r.status);
      if (r.status === 200) served.push(name);
    });
    const waiting = [(await fillWindow(s, 2, track)).first];
    // The heavy client names a new end user on each of six requests; then the light client asks once.
    for (let i = 1; i <= 6; i++) {
      waiting.push(track(`h${i}`, HEAVY, `user-${i}`));
      await delay(10);
    }
    waiting.push(track('light', LIGHT));
    await Promise.all(waiting);
    // The next window's two calls: the light client first (a tie of served counts goes to fewer waiting), then the oldest waiting request.
    expect(results.get('light')).toBe(200);
    expect(served.slice(0, 2)).toEqual(['light', 'h0']);
  }, 15_000);

  test('one client filling ORCHE_MAX_QUEUE leaves the other its turn: the filler gives way, not the newcomer', async () => {
    const W = 1000;
    const now = runningClock(W, 100);
    const s = await stackOf(storeEnv(), W, 2, now, { ORCHE_MAX_WAIT_MS: '2500', ORCHE_MAX_QUEUE: '3' });
    const results = new Map<string, number>();
    const served: string[] = [];
    const track = (name: string, token: string) => send(s, token).then((r) => {
      results.set(name, r.status);
      if (r.status === 200) served.push(name);
    });
    const waiting = [(await fillWindow(s, 2, track)).first];
    for (let i = 1; i <= 4; i++) {
      waiting.push(track(`h${i}`, HEAVY));
      await delay(10);
    }
    // The line is full of the heavy client's requests; the light client still gets in.
    waiting.push(track('light', LIGHT));
    await Promise.all(waiting);
    expect(results.get('light')).toBe(200);
    expect(served.slice(0, 2)).toEqual(['light', 'h0']);
    // The heavy client held the whole line: its newest requests were turned away (429), not the light one.
    expect([...results.entries()].filter(([n, st]) => n.startsWith('h') && st === 429).length).toBeGreaterThanOrEqual(2);
  }, 15_000);

  test('paced release: under contention the window budget is spread, so a request arriving mid-window is served in it', async () => {
    const W = 2000;
    const PER = 4;
    const now = runningClock(W, 100);
    const s = await stackOf(storeEnv(), W, PER, now, { ORCHE_MAX_WAIT_MS: '5000' });
    const results = new Map<string, number>();
    const track = (name: string, token: string) => send(s, token).then((r) => {
      results.set(name, r.status);
    });
    const waiting = [(await fillWindow(s, PER, track)).first];
    // Twice the next window's budget waits for it, all from the heavy client.
    for (let i = 1; i < 2 * PER; i++) {
      waiting.push(track(`h${i}`, HEAVY));
      await delay(10);
    }
    // The heavy client goes on asking, ten times a second, until the light client has its answer:
    // the demand continues, so the next window's budget is held for it, not spent at its start.
    const next = (Math.floor(now() / W) + 1) * W;
    let lightDone = false;
    const more = (async () => {
      for (let i = 0; !lightDone && i < 60; i++) {
        waiting.push(track(`m${i}`, HEAVY));
        await delay(100);
      }
    })();
    // The light client asks a fifth into the next window.
    await delay(next + W / 5 - now());
    const sentAt = now();
    await track('light', LIGHT);
    lightDone = true;
    await more;
    await Promise.all(waiting);
    expect(results.get('light')).toBe(200);
    // Served in the window it arrived in: the budget was not all spent at the window's start.
    const inWindow = s.sim.calls.filter((c) => c.status === 200 && Math.floor(c.at / W) === Math.floor(next / W));
    expect(inWindow.length).toBe(PER);
    expect(inWindow.filter((c) => c.at >= sentAt).length).toBeGreaterThanOrEqual(1);
    // Upstream saw only the one 429 that taught the limit.
    expect(s.sim.calls.filter((c) => c.status === 429)).toHaveLength(1);
  }, 20_000);
}

describe('fair, paced release: memory store', () => rules(() => ({})));
describe('fair, paced release: snapshot store', () => rules(() => ({ ORCHE_STATE_FILE: join(mkdtempSync(join(tmpdir(), 'orche-fair-')), 'state.json') })));
describeRedis('fair, paced release: Redis store', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropPrefix(p);
  });
  rules(() => {
    const prefix = uniquePrefix('fair');
    prefixes.push(prefix);
    return { REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
  });
});
