/**
 * An admin action made while Redis is away wins over the cooldowns recorded before it (docs/design.md#while-redis-is-away: the
 * later admin action wins): when Redis returns, the merge must not bring back a cooldown that a reset
 * or a reactivation cleared during the outage. A private redis-server is stopped and restarted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisStore } from '../../../providers/store/redis';
import type { PickPlan } from '../../../providers/store/types';
import { eventually, freePort } from '../../helpers/child';
import { describeRedis, dropPrefix, uniquePrefix } from '../../helpers/redis';
import { RedisServer } from '../../helpers/redisServer';

const quiet = { info: () => undefined, warn: () => undefined };
const view = (id: string) => ({ keyId: id, account: `key:${id}`, model: 'm', free: false });
const cool = (id: string, until: number) => ({ ...view(id), scope: 'key' as const, until, reason: 'rate_limited', baseMs: 1000, maxMs: 8000 });
// Failover: a first, then b, then c.
const plan = (...ids: string[]): PickPlan => ({ provider: 'kimi', model: 'm', free: false, candidates: ids.map((id) => ({ keyId: id, account: `key:${id}` })), rotating: 0, reserves: 0, trialTtlMs: 1000 });

describeRedis('an admin action while Redis is away', () => {
  let redis: RedisServer | undefined;
  let dir: string | undefined;
  let prefix = '';
  let url = '';
  const stores: RedisStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.map((st) => st.close()));
    stores.length = 0;
    if (redis && url) await dropPrefix(prefix, url).catch(() => undefined);
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    redis = dir = undefined;
  });

  /** A store on a private Redis, then the outage: it serves from local state. */
  async function duringOutage(label: string): Promise<RedisStore> {
    dir = mkdtempSync(join(tmpdir(), 'orche-redis-'));
    redis = new RedisServer(await freePort(), dir);
    await redis.start();
    url = `redis://127.0.0.1:${redis.port}`;
    prefix = uniquePrefix(label);
    const first = new RedisStore({ url, prefix, logger: quiet, timeoutMs: 200 });
    stores.push(first);
    expect(await first.connected()).toBe(true);
    await redis.stop();
    await eventually(async () => first.health().ok === false || undefined, 'the store to notice the outage', 3000);
    return first;
  }

  /** Redis returns: the first store merges, and a second instance sees what Redis holds. */
  async function afterOutage(first: RedisStore): Promise<RedisStore> {
    await redis!.start();
    await eventually(async () => first.health().ok || undefined, 'the first instance back on Redis', 5000);
    const second = new RedisStore({ url, prefix, logger: quiet, timeoutMs: 200 });
    stores.push(second);
    expect(await second.connected()).toBe(true);
    return second;
  }

  test('a reset of every cooldown during the outage stays done: the 600 s cooldown and the congestion before it are not merged back', async () => {
    const first = await duringOutage('outreset');
    const t1 = Date.now();
    await first.cool(cool('a', t1 + 600_000), t1);
    await first.congest('m', t1 + 600_000, 'upstream_rate_limited', t1);
    expect(await first.pick(plan('a'), t1 + 1)).toMatchObject({ keyId: null });
    await first.resetCooldowns(undefined, t1 + 2); // POST /api/keys/reset
    expect((await first.pick(plan('a'), t1 + 3)).keyId).toBe('a');

    const second = await afterOutage(first);
    expect((await second.inspect([view('a')], t1 + 4))[0].cooldownUntil).toBe(0);
    expect(await second.congestedUntil('m', t1 + 4)).toBe(0);
    expect((await second.pick(plan('a'), t1 + 4)).keyId).toBe('a');
    expect((await first.pick(plan('a'), t1 + 5)).keyId).toBe('a');
  }, 30_000);

  test("a provider's reset clears only its keys' cooldowns from before it; a cooldown after the reset, or of another key, is merged", async () => {
    const first = await duringOutage('outresetp');
    const t1 = Date.now();
    await first.cool(cool('a', t1 + 600_000), t1);
    await first.cool(cool('b', t1 + 600_000), t1);
    await first.resetCooldowns([view('a')], t1 + 1);
    await first.cool(cool('c', t1 + 600_000), t1 + 2);
    // A reactivation also clears the key's own cooldown from before it.
    await first.cool(cool('d', t1 + 600_000), t1 + 3);
    await first.setDisabled('d', 'manual', t1 + 4);
    await first.setDisabled('d', null, t1 + 5);

    const second = await afterOutage(first);
    const [a, b, c, d] = await second.inspect(['a', 'b', 'c', 'd'].map(view), t1 + 6);
    expect([a, b, c, d].map((k) => k.cooldownUntil)).toEqual([0, t1 + 600_000, t1 + 600_000, 0]);
    expect(d.disabled).toBeNull();
    expect((await second.pick(plan('b', 'c', 'a'), t1 + 6)).keyId).toBe('a');
  }, 30_000);
});
