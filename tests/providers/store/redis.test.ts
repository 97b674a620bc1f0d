/**
 * Several instances over one Redis: budgets and cooldowns hold across them; a Redis outage costs no
 * request and the service rejoins by itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import request from 'supertest';
import { keyId } from '../../../providers/keys/keys';
import { RedisStore } from '../../../providers/store/redis';
import { startSimulator, type Simulator } from '../../../scripts/simulator';
import { eventually, freePort, spawnOrche, type OrcheProcess } from '../../helpers/child';
import { RedisServer } from '../../helpers/redisServer';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-shared-key-a-0001';
const B = 'sk-or-v1-shared-key-b-0002';
const C = 'sk-or-v1-shared-key-c-0003';
const Q = 'sk-or-v1-shared-qwen-q-0004';
const Q2 = 'sk-or-v1-shared-qwen-r-0005';

async function storeOk(url: string): Promise<true | undefined> {
  const res = await request(url).get('/health');
  return res.body.store?.ok === true ? true : undefined;
}

describeRedis('two orche processes sharing one Redis', () => {
  let sim: Simulator | undefined;
  let procs: OrcheProcess[] = [];
  let prefix: string;

  afterEach(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await sim?.close();
    await dropPrefix(prefix);
    procs = [];
    sim = undefined;
  });

  test('60 requests alternating over 2 instances with 3 keys at 10/min: 30 reach upstream, 30 get 429; a cooldown is seen by both', async () => {
    prefix = uniquePrefix('instances');
    // The simulator enforces the same 10/min per key: a budget overrun would show as an upstream 429.
    sim = await startSimulator({ keys: [{ key: A, rpm: 10 }, { key: B, rpm: 10 }, { key: C, rpm: 10 }, { key: Q }, { key: Q2 }] });
    const env = {
      OPENROUTER_BASE_URL: sim.baseUrl,
      REDIS_URL,
      ORCHE_REDIS_PREFIX: prefix,
      PROVIDER_KIMI_API_KEY: A,
      PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}`,
      PROVIDER_KIMI_RPM: '10',
      PROVIDER_QWEN3_API_KEY: Q,
      PROVIDER_QWEN3_BACKUP_KEYS: Q2,
      PROVIDER_QWEN3_STRATEGY: 'failover',
      // Refuse at once when the budget is spent, rather than wait for the next minute.
      ORCHE_MAX_WAIT_MS: '0',
    };
    procs = await Promise.all([spawnOrche(env), spawnOrche(env)]);
    const [one, two] = procs;
    for (const p of procs) await eventually(() => storeOk(p.url), 'Redis to connect', 5000);

    // A cooldown learned by one instance holds the other at once.
    sim.addRule({ match: { key: Q }, type: 'generic-429', headers: { 'Retry-After': '120' }, times: 1 });
    expect((await request(one.url).post('/api/chat').send({ provider: 'qwen3', messages: hi })).body.key_id).toBe(keyId(Q2));
    const seenBy = async (url: string) => (await request(url).get('/api/key-status/qwen3')).body.keys.find((k: { id: string }) => k.id === keyId(Q));
    const [fromOne, fromTwo] = [await seenBy(one.url), await seenBy(two.url)];
    expect(fromTwo).toMatchObject({ state: 'cooling', reason: 'rate_limited', cooldown_until: fromOne.cooldown_until });
    expect((await request(two.url).post('/api/chat').send({ provider: 'qwen3', messages: hi })).body.key_id).toBe(keyId(Q2));
    expect(sim.calls.filter((c) => c.key === Q)).toHaveLength(1);

    // Budgets count per clock minute: start early enough in one that the 60 requests fit in it.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 100));
    const minute = Math.floor(Date.now() / 60_000);
    const replies = await Promise.all(
      Array.from({ length: 60 }, (_, i) => request(procs[i % 2].url).post('/api/chat').send({ provider: 'kimi', messages: hi })),
    );
    expect(Math.floor(Date.now() / 60_000)).toBe(minute);

    const kimiCalls = sim.calls.filter((c) => c.model === 'moonshotai/kimi-k2');
    expect(kimiCalls).toHaveLength(30);
    expect(kimiCalls.filter((c) => c.status === 429)).toHaveLength(0);
    expect([A, B, C].map((k) => kimiCalls.filter((c) => c.key === k).length)).toEqual([10, 10, 10]);
    const ok = replies.filter((r) => r.status === 200);
    const refused = replies.filter((r) => r.status === 429);
    expect([ok.length, refused.length]).toEqual([30, 30]);
    // Both instances served and both refused: the budget is one, not one per instance.
    for (const half of [0, 1]) expect(replies.filter((r, i) => i % 2 === half && r.status === 200).length).toBeGreaterThan(0);
    for (const r of refused) {
      expect(r.body.error.type).toBe('all_keys_rate_limited');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(r.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    const counted = (await request(two.url).get('/api/key-status/kimi')).body.keys.map((k: { calls_this_minute: number }) => k.calls_this_minute);
    expect(counted).toEqual([10, 10, 10]);
  }, 90_000);
});

describeRedis('a Redis outage under traffic', () => {
  let redis: RedisServer | undefined;
  let stack: Stack | undefined;

  afterEach(async () => {
    await stack?.close();
    await redis?.stop();
    stack = redis = undefined;
  });

  test('no request fails, /health says degraded, one log line each way, and orche rejoins within seconds', async () => {
    redis = new RedisServer(await freePort());
    await redis.start();
    const prefix = uniquePrefix('outage');
    stack = await startStack(
      { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}`, REDIS_URL: `redis://127.0.0.1:${redis.port}`, ORCHE_REDIS_PREFIX: prefix },
      { keys: [{ key: A }, { key: B }, { key: C }] },
    );
    const s = stack;
    await eventually(() => storeOk(s.url), 'Redis to connect', 5000);

    const statuses: number[] = [];
    let flowing = true;
    const traffic = (async () => {
      while (flowing) statuses.push((await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status);
    })();
    const served = (n: number) => eventually(async () => (statuses.length >= n ? true : undefined), `${n} requests`, 5000);

    await served(20);
    await redis.stop();
    const downAt = statuses.length;
    await served(downAt + 20);
    const health = await s.http.get('/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'degraded', store: { kind: 'redis', ok: false } });
    // Degraded, not unready (docs/design.md#while-redis-is-away): with a shared Redis every instance would go unready at once.
    expect((await s.http.get('/ready')).status).toBe(200);

    await redis.start();
    const restartedAt = Date.now();
    await eventually(async () => ((await s.http.get('/health')).body.status === 'ok' ? true : undefined), 'orche to rejoin Redis', 5000);
    const rejoinMs = Date.now() - restartedAt;
    const upAt = statuses.length;
    await served(upAt + 20);
    flowing = false;
    await traffic;

    expect(statuses.filter((st) => st !== 200)).toEqual([]);
    expect(rejoinMs).toBeLessThan(3000);
    const messages = s.logs.parsed().map((l) => l.message);
    expect(messages.filter((m) => m === 'redis unavailable: serving from local state until it returns')).toHaveLength(1);
    expect(messages.filter((m) => m === 'redis is back: shared state again')).toHaveLength(1);
    // Back on Redis: the restarted (empty) server holds the counters of the picks made since.
    const counters = await eventually(async () => {
      const r = new Redis(`redis://127.0.0.1:${redis!.port}`);
      try {
        const keys = await r.keys(`${prefix}n:*`);
        return keys.length > 0 ? keys : undefined;
      } finally {
        r.disconnect();
      }
    }, 'counters in the restarted Redis', 1000);
    expect(counters.length).toBeGreaterThan(0);
    console.log(`orche rejoined Redis ${rejoinMs} ms after it came back`);
  }, 30_000);
});

describeRedis('state written while Redis is away', () => {
  let redis: RedisServer | undefined;
  let dir: string | undefined;
  const stores: RedisStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.map((st) => st.close()));
    stores.length = 0;
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    redis = dir = undefined;
  });

  /** A private Redis that keeps its data across a stop, and a first store on it with keys a and b (failover). */
  async function persistentRedis(label: string) {
    dir = mkdtempSync(join(tmpdir(), 'orche-redis-'));
    redis = new RedisServer(await freePort(), dir);
    await redis.start();
    const url = `redis://127.0.0.1:${redis.port}`;
    const prefix = uniquePrefix(label);
    const quiet = { info: () => undefined, warn: () => undefined };
    const first = new RedisStore({ url, prefix, logger: quiet, timeoutMs: 200 });
    stores.push(first);
    expect(await first.connected()).toBe(true);
    const plan = { provider: 'kimi', model: 'm', free: false, candidates: [{ keyId: 'a', account: 'key:a' }, { keyId: 'b', account: 'key:b' }], rotating: 0, reserves: 0, trialTtlMs: 1000 };
    const view = (id: string) => ({ keyId: id, account: `key:${id}`, model: 'm', free: false });
    return { server: redis, url, prefix, quiet, first, plan, view };
  }

  test('is merged into Redis when it returns: a 600 s cooldown and a reactivation made during the outage hold for a second instance; counters add up', async () => {
    const { server, url, prefix, quiet, first, plan, view } = await persistentRedis('merge');
    const t0 = Date.now();
    await first.setDisabled('b', 'manual', t0);
    expect((await first.pick(plan, t0)).keyId).toBe('a');

    await server.stop();
    await eventually(async () => first.health().ok === false || undefined, 'the store to notice the outage', 3000);
    const t1 = Date.now();
    expect((await first.pick(plan, t1)).keyId).toBe('a'); // local state
    await first.cool({ ...view('a'), scope: 'key', until: t1 + 600_000, reason: 'rate_limited', baseMs: 1000, maxMs: 8000 }, t1);
    await first.setDisabled('b', null, t1 + 1);
    expect((await first.pick(plan, t1 + 2)).keyId).toBe('b');

    await server.start();
    await eventually(async () => first.health().ok || undefined, 'the first instance back on Redis', 5000);
    const second = new RedisStore({ url, prefix, logger: quiet, timeoutMs: 200 });
    stores.push(second);
    expect(await second.connected()).toBe(true);
    const [a, b] = await second.inspect([view('a'), view('b')], t1 + 3);
    expect(a.cooldownUntil).toBe(t1 + 600_000);
    expect(b.disabled).toBeNull();
    // One pick before the outage, one of a and one of b during it.
    expect([a.minuteCount + b.minuteCount, a.dayCount + b.dayCount]).toEqual([3, 3]);
    expect((await second.pick(plan, t1 + 3)).keyId).toBe('b');
    await dropPrefix(prefix, url);
  }, 30_000);

  test('learned limits and their counts are merged when it returns: the later learned_at wins, the calls of the outage add up', async () => {
    // Failover order: a while it may serve, then b.
    const { server, url, prefix, quiet, first, plan, view } = await persistentRedis('mergelearn');
    const DAY = 86_400_000;
    const t0 = Date.now();
    const learn = (id: string, limit: number, at: number) =>
      first.learnLimit({ keyId: id, account: `key:${id}`, model: 'm', scope: 'key', limit, windowMs: DAY, resetAt: (Math.floor(at / DAY) + 1) * DAY, source: '429' }, at);
    // Before the outage: a learned 5 a day; b learned 5 a day at a later instant than the outage's lesson.
    await learn('a', 5, t0);
    await learn('b', 5, t0 + 60_000);
    expect((await first.pick(plan, t0)).keyId).toBe('a');

    await server.stop();
    await eventually(async () => first.health().ok === false || undefined, 'the store to notice the outage', 3000);
    const t1 = Date.now();
    // During it: a relearns 3 (later than Redis's 5), b relearns 2 (earlier than Redis's 5); two calls of a count.
    await learn('a', 3, t1);
    await learn('b', 2, t1);
    expect((await first.pick(plan, t1)).keyId).toBe('a');
    expect((await first.pick(plan, t1 + 1)).keyId).toBe('a');
    // A third that upstream did not serve (a 5xx): refunded, it does not count.
    expect((await first.pick(plan, t1 + 1)).keyId).toBe('a');
    await first.refund(view('a'), t1 + 1);

    await server.start();
    await eventually(async () => first.health().ok || undefined, 'the first instance back on Redis', 5000);
    const second = new RedisStore({ url, prefix, logger: quiet, timeoutMs: 200 });
    stores.push(second);
    expect(await second.connected()).toBe(true);
    const [a, b] = await second.inspect([view('a'), view('b')], t1 + 2);
    expect(a.learned.map((l) => [l.limit, l.learnedAt, l.used])).toEqual([[3, t1, 3]]);
    expect(b.learned.map((l) => [l.limit, l.learnedAt, l.used])).toEqual([[5, t0 + 60_000, 0]]);
    // a has had its 3 calls today (one before the outage, two during it): the second instance moves on to b.
    expect((await second.pick(plan, t1 + 3)).keyId).toBe('b');
    await dropPrefix(prefix, url);
  }, 30_000);
});

describeRedis('a failed command on a live connection', () => {
  let redis: RedisServer | undefined;
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  test('a pick that times out after its script ran is counted once, not again when the local changes are merged', async () => {
    redis = new RedisServer(await freePort());
    await redis.start();
    const url = `redis://127.0.0.1:${redis.port}`;
    const quiet = { info: () => undefined, warn: () => undefined };
    const store = new RedisStore({ url, prefix: uniquePrefix('once'), logger: quiet, timeoutMs: 200 });
    const admin = new Redis(url);
    try {
      expect(await store.connected()).toBe(true);
      const plan = { provider: 'kimi', model: 'm', free: true, candidates: [{ keyId: 'k1', account: 'key:k1' }], rotating: 1, reserves: 0, trialTtlMs: 1000 };
      await admin.call('CLIENT', 'PAUSE', '800', 'ALL');
      const t = Date.now();
      // Redis runs the script once the pause ends; the store has given up on it by then.
      expect((await store.pick(plan, t)).keyId).toBe('k1');
      await eventually(async () => store.health().ok || undefined, 'the store back on Redis', 5000);
      const [k1] = await store.inspect([{ keyId: 'k1', account: 'key:k1', model: 'm', free: true }], t);
      expect([k1.minuteCount, k1.dayCount]).toEqual([1, 1]);
    } finally {
      admin.disconnect();
      await store.close();
    }
  }, 20_000);

  test('a command timeout sends the store to local state, and it goes back to Redis without any reconnect', async () => {
    redis = new RedisServer(await freePort());
    await redis.start();
    const url = `redis://127.0.0.1:${redis.port}`;
    const lines: string[] = [];
    const logger = { info: (m: string) => void lines.push(m), warn: (m: string) => void lines.push(m) };
    const store = new RedisStore({ url, prefix: uniquePrefix('pause'), logger, timeoutMs: 200 });
    const admin = new Redis(url);
    try {
      expect(await store.connected()).toBe(true);
      const plan = { provider: 'kimi', model: 'm', free: false, candidates: [{ keyId: 'k1', account: 'key:k1' }], rotating: 1, reserves: 0, trialTtlMs: 1000 };
      // Redis holds every client's commands for 800 ms: the pick times out (200 ms), the connection stays up.
      await admin.call('CLIENT', 'PAUSE', '800', 'ALL');
      expect((await store.pick(plan, Date.now())).keyId).toBe('k1'); // served from local state
      expect(store.health().ok).toBe(false);
      await eventually(async () => store.health().ok || undefined, 'the store back on Redis', 5000);
      expect(lines.filter((m) => m.startsWith('redis unavailable'))).toHaveLength(1);
      expect(lines.filter((m) => m === 'redis is back: shared state again')).toHaveLength(1);
      expect(lines.filter((m) => m === 'redis connected')).toHaveLength(1); // no reconnect happened
    } finally {
      admin.disconnect();
      await store.close();
    }
  }, 20_000);
});
