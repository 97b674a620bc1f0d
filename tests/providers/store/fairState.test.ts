/**
 * What fair, paced release shares (providers/store/fairState.ts), on memory and on a real Redis:
 * the pacing moves on once per state (compare-and-set), waiting counts and arrival rates add up
 * across instances, served counts per client and end user per window, names hashed in Redis.
 */
import Redis from 'ioredis';
import { type FairState, MemoryFairState, RedisFairState } from '../../../providers/store/fairState';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';

const NOW = 1_800_000_000_000;

function contract(make: () => Promise<FairState>): void {
  test('the pacing state moves on only from the version read', async () => {
    const f = await make();
    const read = await f.paceState('glm45', 3, NOW, 0.002);
    expect(read.state).toBeUndefined();
    expect(await f.claimPace('glm45', read.version, { windowEnd: NOW + 10_000, released: 1, nextAt: NOW + 500 }, NOW)).toBe(true);
    // A second claim from the same (now stale) version loses: another release already moved it on.
    expect(await f.claimPace('glm45', read.version, { windowEnd: NOW + 10_000, released: 1, nextAt: NOW + 500 }, NOW)).toBe(false);
    const again = await f.paceState('glm45', 3, NOW, 0.002);
    expect(again.state).toEqual({ windowEnd: NOW + 10_000, released: 1, nextAt: NOW + 500 });
    expect(again.waiting).toBe(3);
    expect(again.arrivalRate).toBeCloseTo(0.002, 6);
    // One instance alone: nobody else waits.
    expect(again.othersLeast).toBe(Infinity);
  });

  test('served counts per client and per end user within it, per window', async () => {
    const f = await make();
    await f.countServed('glm45', 7, 10_000, 't:heavy', '');
    await f.countServed('glm45', 7, 10_000, 't:heavy', '');
    await f.countServed('glm45', 7, 10_000, 't:light', 'alice');
    await f.countServed('glm45', 8, 10_000, 't:heavy', '');
    expect(await f.served('glm45', 7, ['t:heavy', 't:light', 't:other'], [['t:light', 'alice'], ['t:light', 'bob'], ['t:heavy', '']])).toEqual({ clients: [2, 1, 0], users: [1, 0, 2] });
    expect(await f.served('glm45', 8, ['t:heavy', 't:light'], [])).toEqual({ clients: [1, 0], users: [] });
  });
}

describe('FairState: memory', () => contract(async () => new MemoryFairState()));

describeRedis('FairState: Redis', () => {
  const prefixes: string[] = [];
  const conns: Redis[] = [];
  afterAll(async () => {
    for (const c of conns) c.disconnect();
    for (const p of prefixes) await dropPrefix(p);
  });
  const connect = async () => {
    const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    conns.push(r);
    return r;
  };
  contract(async () => {
    const prefix = uniquePrefix('fairstate');
    prefixes.push(prefix);
    return new RedisFairState(await connect(), prefix, 'inst-a');
  });

  test('two instances: waiting counts and arrival rates add up; an idle instance counts 0; names are hashed', async () => {
    const prefix = uniquePrefix('fairstate2');
    prefixes.push(prefix);
    const a = new RedisFairState(await connect(), prefix, 'inst-a');
    const b = new RedisFairState(await connect(), prefix, 'inst-b');
    await a.paceState('glm45', 4, NOW, 0.001);
    const both = await b.paceState('glm45', 6, NOW, 0.002);
    expect(both.waiting).toBe(10);
    expect(both.arrivalRate).toBeCloseTo(0.003, 6);
    // a has nobody waiting any more.
    await a.paceState('glm45', 0, NOW + 1, 0);
    expect((await b.paceState('glm45', 6, NOW + 2, 0.002)).waiting).toBe(6);
    // One release per state across instances.
    const ra = await a.paceState('glm45', 0, NOW + 3, 0);
    const rb = await b.paceState('glm45', 6, NOW + 3, 0.002);
    expect(await a.claimPace('glm45', ra.version, { windowEnd: NOW + 10_000, released: 1, nextAt: NOW + 600 }, NOW + 3)).toBe(true);
    expect(await b.claimPace('glm45', rb.version, { windowEnd: NOW + 10_000, released: 1, nextAt: NOW + 600 }, NOW + 3)).toBe(false);
    // Counts are shared, and no client or end-user name is stored in clear.
    await a.countServed('glm45', 5, 10_000, 't:client-token-hash', 'alice@example.com');
    expect(await b.served('glm45', 5, ['t:client-token-hash'], [['t:client-token-hash', 'alice@example.com']])).toEqual({ clients: [1], users: [1] });
    const r = await connect();
    const keys = await r.keys(`${prefix}*`);
    const dump = JSON.stringify(await Promise.all(keys.map(async (k) => [k, await r.hgetall(k)])));
    expect(dump).not.toContain('alice');
    expect(dump).not.toContain('client-token-hash');
  });

  test("each instance reads the fewest served of the clients waiting on the others, never its own; an idle one reports none", async () => {
    const prefix = uniquePrefix('fairstate3');
    prefixes.push(prefix);
    const a = new RedisFairState(await connect(), prefix, 'inst-a');
    const b = new RedisFairState(await connect(), prefix, 'inst-b');
    const c = new RedisFairState(await connect(), prefix, 'inst-c');
    expect((await a.paceState('glm45', 2, NOW, 0, 1)).othersLeast).toBe(Infinity);
    expect((await b.paceState('glm45', 5, NOW, 0, 4)).othersLeast).toBe(1);
    expect((await c.paceState('glm45', 3, NOW, 0, 6)).othersLeast).toBe(1);
    expect((await a.paceState('glm45', 2, NOW + 1, 0, 1)).othersLeast).toBe(4);
    // a's client was served and nobody waits there now: the least the others see is b's.
    await a.paceState('glm45', 0, NOW + 2, 0);
    expect((await c.paceState('glm45', 3, NOW + 3, 0, 6)).othersLeast).toBe(4);
    // An instance that waits without knowing its counts reports none.
    await b.paceState('glm45', 5, NOW + 4, 0);
    expect((await c.paceState('glm45', 3, NOW + 5, 0, 6)).othersLeast).toBe(Infinity);
  });

  test('a waiting count written by an instance before the least count still adds up, and is kept', async () => {
    const prefix = uniquePrefix('fairstate4');
    prefixes.push(prefix);
    const r = await connect();
    await r.hset(`${prefix}pz:glm45`, 'w:old-instance', `4:1000@${NOW}`);
    const b = new RedisFairState(await connect(), prefix, 'inst-b');
    const read = await b.paceState('glm45', 6, NOW + 1, 0.002, 3);
    expect(read.waiting).toBe(10);
    expect(read.othersLeast).toBe(Infinity);
    expect(await r.hget(`${prefix}pz:glm45`, 'w:old-instance')).toBe(`4:1000@${NOW}`);
  });
});
