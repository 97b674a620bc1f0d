/**
 * Every state store against the same contract, then what only one of them does: the snapshot's file,
 * Redis's expiry and key names, and Redis's local fallback.
 */
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { keyId } from '../../../providers/keys/keys';
import { MemoryStore } from '../../../providers/store/memory';
import { RedisStore } from '../../../providers/store/redis';
import { SnapshotStore, type StoreLog } from '../../../providers/store/snapshot';
import type { PickPlan } from '../../../providers/store/types';
import { freePort } from '../../helpers/child';
import { describeRedis, dropPrefix, REDIS_URL, redisStores, uniquePrefix } from '../../helpers/redis';
import { describeStoreContract } from '../../helpers/storeContract';

const T = Date.UTC(2026, 10, 22, 12, 30, 10);

/** A logger that keeps what it was told. */
function recordingLog(): StoreLog & { lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; meta?: Record<string, unknown> }> = [];
  return {
    lines,
    info: (message, meta) => lines.push({ level: 'info', message, meta }),
    warn: (message, meta) => lines.push({ level: 'warn', message, meta }),
  };
}

const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'orche-state-'));
  dirs.push(dir);
  return join(dir, 'state.json');
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describeStoreContract('memory', async () => new MemoryStore());

describeStoreContract('snapshot', async () => new SnapshotStore(tempFile(), { logger: recordingLog(), now: () => T }));

describeRedis('redis', () => {
  const stores = redisStores('contract', recordingLog);
  describeStoreContract('redis', stores.make, stores.cleanup);
});

const plan: PickPlan = {
  provider: 'kimi',
  model: 'vendor/x:free',
  free: true,
  candidates: [
    { keyId: 'a', account: 'team' },
    { keyId: 'b', account: 'key:b' },
    { keyId: 'c', account: 'key:c' },
  ],
  rotating: 3,
  reserves: 0,
  trialTtlMs: 5000,
};
const viewA = { keyId: 'a', account: 'team', model: plan.model, free: true };

describe('SnapshotStore', () => {
  test('a reopened store has the cooldowns, disabled keys, aliases, counters, position and sections it saved', async () => {
    const path = tempFile();
    const first = new SnapshotStore(path, { logger: recordingLog(), now: () => T });
    const saved = { a: { requests: 3 } };
    first.attach('pool_stats', { save: () => saved, restore: () => {} });
    await first.pick(plan, T);
    await first.pick(plan, T);
    await first.cool({ ...viewA, scope: 'key', until: T + 60_000, reason: 'rate_limited', baseMs: 1000, maxMs: 8000 }, T);
    await first.setDisabled('c', 'invalid_key', T);
    await first.learnAccount('key:b', 'user_9', T);
    await first.close();

    const log = recordingLog();
    const second = new SnapshotStore(path, { logger: log, now: () => T + 1000 });
    let restored: unknown;
    second.attach('pool_stats', { save: () => ({}), restore: (d) => (restored = d) });
    expect(restored).toEqual(saved);
    const views = ['a', 'b', 'c'].map((id) => ({ keyId: id, account: id === 'a' ? 'team' : `key:${id}`, model: plan.model, free: true }));
    const seen = await second.inspect(views, T + 1000);
    expect(seen.map((s) => [s.cooldownUntil, s.disabled, s.account, s.dayCount])).toEqual([
      [T + 60_000, null, 'team', 1],
      [0, null, 'user_9', 1],
      [0, 'invalid_key', 'key:c', 0],
    ]);
    // Position 2 was saved: c is next, but disabled, so the rotation wraps to b (a is cooling).
    expect((await second.pick(plan, T + 1000)).keyId).toBe('b');
    expect(log.lines).toEqual([expect.objectContaining({ level: 'info', message: 'state restored from snapshot' })]);
    await second.close();
  });

  test('a change is on disk within a second, without a flush, written by rename (no temp file left)', async () => {
    const path = tempFile();
    const store = new SnapshotStore(path, { logger: recordingLog(), now: () => T });
    await store.setDisabled('a', 'manual', T);
    const started = Date.now();
    while (!existsSync(path) && Date.now() - started < 1000) await new Promise((r) => setTimeout(r, 20));
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ format: 'orche-state', version: 1, state: { disabled: { a: { value: 'manual', at: T } } } });
    expect(readdirSync(join(path, '..'))).toEqual(['state.json']);
    await store.close();
  });

  test.each([
    ['corrupt', '{"format":"orche-state","vers', /corrupt/],
    ['foreign', JSON.stringify({ hello: 'world' }), /ignored/],
    ['from a newer orche', JSON.stringify({ format: 'orche-state', version: 2, state: {} }), /ignored/],
    ['missing a part', JSON.stringify({ format: 'orche-state', version: 1, saved_at: T, state: { gates: {} } }), /ignored/],
  ])('a %s file is reported once and ignored, and start-up goes on with empty state', async (_kind, text, message) => {
    const path = tempFile();
    writeFileSync(path, text);
    const log = recordingLog();
    const store = new SnapshotStore(path, { logger: log, now: () => T });
    expect(log.lines).toHaveLength(1);
    expect(log.lines[0]).toMatchObject({ level: 'warn', message: expect.stringMatching(message), meta: { path } });
    expect(await store.pick(plan, T)).toEqual({ keyId: 'a', index: 0, trial: false });
    await store.close();
    // The next save replaces it with a valid file.
    expect(JSON.parse(readFileSync(path, 'utf8')).format).toBe('orche-state');
  });
});

/**
 * A snapshot heals (docs/design.md#snapshot-healing): one malformed value in an otherwise good file is dropped
 * with one warning naming it, the rest is loaded, and the file is rewritten without it.
 */
describe('SnapshotStore: a malformed value in a good file', () => {
  const liveGate = { until: T + 60_000, reason: 'rate_limited', recovering: false, trialUntil: 0 };
  /** A good file: key b cooling, key c disabled, a's account learned, the position at 1; `patch` spoils one part. */
  const fileWith = (patch: (f: Record<string, any>) => void) => {
    const f: Record<string, any> = {
      format: 'orche-state',
      version: 1,
      saved_at: T - 1000,
      state: {
        gates: { 'k:b': liveGate },
        disabled: { c: { value: 'invalid_key', at: T - 1000 } },
        strikes: { b: { value: 2, at: T - 1000 } },
        aliases: { 'key:a': { value: 'user_7', at: T - 1000 } },
        counters: {},
        positions: { kimi: { value: 1, at: T - 1000 } },
        learned: {},
      },
      sections: {},
    };
    patch(f);
    return JSON.stringify(f);
  };
  const views = ['a', 'b', 'c'].map((id) => ({ keyId: id, account: `key:${id}`, model: plan.model, free: true }));
  const planOwn: PickPlan = { ...plan, candidates: [{ keyId: 'a', account: 'key:a' }, { keyId: 'b', account: 'key:b' }, { keyId: 'c', account: 'key:c' }] };

  test.each<[string, string, (f: Record<string, any>) => void]>([
    ['a gate that is null', 'state.gates["k:x"]', (f) => (f.state.gates['k:x'] = null)],
    ['a gate that is a number', 'state.gates["k:x"]', (f) => (f.state.gates['k:x'] = 42)],
    ['a gate whose deadline is a string', 'state.gates["k:x"]', (f) => (f.state.gates['k:x'] = { ...liveGate, until: 'soon' })],
    ['a gate whose deadline is past what a date can hold', 'state.gates["k:x"]', (f) => (f.state.gates['k:x'] = { ...liveGate, until: 1e300 })],
    ['a string saved_at', 'saved_at', (f) => (f.saved_at = 'yesterday')],
    ['a saved_at past what a date can hold', 'saved_at', (f) => (f.saved_at = 1e20)],
    ['a non-numeric round-robin position', 'state.positions["glm45"]', (f) => (f.state.positions.glm45 = { value: 'two', at: T })],
    ['a bare non-numeric position (a file from before values were stamped)', 'state.positions["glm45"]', (f) => (f.state.positions.glm45 = 'two')],
    ['a disabled flag that is a number', 'state.disabled["x"]', (f) => (f.state.disabled.x = { value: 5, at: T })],
    ['a strike count that is an object', 'state.strikes["x"]', (f) => (f.state.strikes.x = { value: { n: 1 }, at: T })],
    ['an alias that is null', 'state.aliases["key:x"]', (f) => (f.state.aliases['key:x'] = null)],
    ['a counter without a window', 'state.counters["d:x"]', (f) => (f.state.counters['d:x'] = { count: 3 })],
    ['a learned limit that is a string', 'state.learned["k:x"]', (f) => (f.state.learned['k:x'] = { 60000: 'ten' })],
    ['a part that is not an object', 'state.counters', (f) => (f.state.counters = [1, 2])],
    ['sections that are not an object', 'sections', (f) => (f.sections = 'none')],
  ])('%s: dropped with one warning naming it, the rest loaded, the file rewritten', async (_kind, name, spoil) => {
    const path = tempFile();
    writeFileSync(path, fileWith(spoil));
    const log = recordingLog();
    const store = new SnapshotStore(path, { logger: log, now: () => T });
    const warns = log.lines.filter((l) => l.level === 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0].meta).toMatchObject({ path, dropped: [name] });
    // The rest is loaded: b still cooling, c still disabled, a's account learned.
    const seen = await store.inspect(views, T);
    expect(seen.map((v) => [v.cooldownUntil, v.disabled, v.account])).toEqual([
      [0, null, 'user_7'],
      [T + 60_000, null, 'key:b'],
      [0, 'invalid_key', 'key:c'],
    ]);
    // Picks work on every provider (a bad position used to be a 500 on each request to it).
    expect((await store.pick({ ...planOwn, provider: 'glm45' }, T)).keyId).toBe('a');
    expect(await store.pick({ ...planOwn, provider: 'kimi' }, T)).toMatchObject({ keyId: 'a' });
    // The file is rewritten without the bad value: a second start warns no more.
    await store.flush();
    await eventuallyTrue(() => !JSON.stringify(JSON.parse(readFileSync(path, 'utf8'))).includes('"two"') && JSON.parse(readFileSync(path, 'utf8')).saved_at === T);
    await store.close();
    const again = recordingLog();
    const second = new SnapshotStore(path, { logger: again, now: () => T + 1 });
    expect(again.lines).toEqual([expect.objectContaining({ level: 'info', message: 'state restored from snapshot' })]);
    expect((await second.inspect(views, T + 1))[1].cooldownUntil).toBe(T + 60_000);
    await second.close();
  });

  test('a non-JSON file is moved aside (its content never logged) and orche starts with empty state', async () => {
    const path = tempFile();
    const text = '{"format":"orche-state","secret-ish-content-0123456789';
    writeFileSync(path, text);
    const log = recordingLog();
    const store = new SnapshotStore(path, { logger: log, now: () => T });
    expect(log.lines).toHaveLength(1);
    expect(JSON.stringify(log.lines)).not.toMatch(/secret-ish|orche-state"|0123/);
    const movedTo = String(log.lines[0].meta?.moved_to);
    expect(movedTo.startsWith(`${path}.corrupt-`)).toBe(true);
    expect(readFileSync(movedTo, 'utf8')).toBe(text);
    expect(existsSync(path)).toBe(false);
    expect(await store.pick(plan, T)).toEqual({ keyId: 'a', index: 0, trial: false });
    await store.close();
    expect(JSON.parse(readFileSync(path, 'utf8')).format).toBe('orche-state');
  });
});

async function eventuallyTrue(check: () => boolean, withinMs = 2000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describeRedis('RedisStore in Redis', () => {
  test('every key it writes is under the prefix, names no secret, and expires', async () => {
    const secret = 'sk-or-v1-redis-names-secret-0001';
    const id = keyId(secret);
    const prefix = uniquePrefix('ttl');
    const store = new RedisStore({ url: REDIS_URL, prefix, logger: recordingLog() });
    expect(await store.connected()).toBe(true);
    const p: PickPlan = { ...plan, candidates: [{ keyId: id, account: `key:${id}` }], rotating: 1, keyRpm: 5, accountRpd: 9 };
    const view = { keyId: id, account: `key:${id}`, model: plan.model, free: true };
    await store.pick(p, T);
    await store.cool({ ...view, scope: 'key', until: T + 1000, reason: 'rate_limited', baseMs: 1000, maxMs: 8000 }, T);
    await store.cool({ ...view, scope: 'account_free', reason: 'free', baseMs: 1000, maxMs: 8000 }, T);
    await store.congest(plan.model, T + 5000, 'upstream', T);
    await store.setDisabled(id, 'manual', T);
    await store.learnAccount(`key:${id}`, 'user_1', T);
    const r = new Redis(REDIS_URL);
    try {
      const keys = await r.keys(`${prefix}*`);
      expect(keys.length).toBeGreaterThanOrEqual(9);
      for (const k of keys) {
        expect(k).not.toContain(secret.slice(6));
        expect(await r.pttl(k)).toBeGreaterThan(0);
      }
    } finally {
      r.disconnect();
      await store.close();
      await dropPrefix(prefix);
    }
  });

  test('one pick is one round trip: measured against this Redis', async () => {
    const prefix = uniquePrefix('rtt');
    const store = new RedisStore({ url: REDIS_URL, prefix, logger: recordingLog() });
    expect(await store.connected()).toBe(true);
    const many: PickPlan = { ...plan, free: false, candidates: Array.from({ length: 200 }, (_, i) => ({ keyId: `k${i}`, account: `key:k${i}` })), rotating: 200 };
    const n = 500;
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await store.pick(many, T);
    const perPickUs = Number(process.hrtime.bigint() - started) / 1000 / n;
    console.log(`RedisStore.pick over 200 keys: ${perPickUs.toFixed(0)} µs per pick (sequential, local Redis)`);
    expect(perPickUs).toBeLessThan(5000);
    await store.close();
    await dropPrefix(prefix);
  });
});

test('RedisStore with no Redis serves from local state, says so once, and reports not ok', async () => {
  const port = await freePort();
  const log = recordingLog();
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, prefix: 'orche-test:', logger: log, timeoutMs: 200 });
  expect(await store.connected(300)).toBe(false);
  const started = Date.now();
  expect(await Promise.all([store.pick(plan, T), store.pick(plan, T)])).toEqual([
    { keyId: 'a', index: 0, trial: false },
    { keyId: 'b', index: 1, trial: false },
  ]);
  expect(Date.now() - started).toBeLessThan(100);
  expect(store.health()).toMatchObject({ kind: 'redis', ok: false });
  await new Promise((r) => setTimeout(r, 400)); // a few reconnect attempts
  expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  await store.close();
});

describe('SnapshotStore writes without following links (docs/design.md#snapshot-healing)', () => {
  test('a link planted at the old temp name or at any name next to the file is not followed; file 0600, new folder 0700', async () => {
    const root = mkdtempSync(join(tmpdir(), 'orche-state-'));
    dirs.push(root);
    const victim = join(root, 'victim.txt');
    writeFileSync(victim, 'do not touch');
    const folder = join(root, 'state');
    const path = join(folder, 'state.json');
    const store = new SnapshotStore(path, { logger: recordingLog(), now: () => T });
    await store.setDisabled('c', 'invalid_key', T);
    await store.flush();
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    // An attacker who can write in the folder plants links where the next write may go.
    symlinkSync(victim, `${path}.${process.pid}.tmp`);
    for (let i = 0; i < 8; i++) symlinkSync(victim, join(folder, `planted-${i}`));
    await store.setDisabled('d', 'invalid_key', T);
    await store.close();
    expect(readFileSync(victim, 'utf8')).toBe('do not touch');
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, 'utf8')).state.disabled).toMatchObject({ c: { value: 'invalid_key', at: T }, d: { value: 'invalid_key', at: T } });
    // No temp file is left behind.
    expect(readdirSync(folder).filter((f) => f.endsWith('.tmp') && !lstatSync(join(folder, f)).isSymbolicLink())).toEqual([]);
  });
});
