/** Cost in server/observe/usage.ts: per key, per client and per end user, over fixed clocks. */
import { PoolEmitter } from '../../../providers/keys/events';
import { UsageTracker } from '../../../server/observe/usage';

const T = Date.UTC(2026, 10, 22, 12, 30, 10);
const MIN = 60_000;
const HOUR = 60 * MIN;

function tracker(max?: number) {
  const events = new PoolEmitter();
  const usage = new UsageTracker(events, max);
  const spend = (cost: number, at: number, client?: string, keyId = 'k1') => events.emit('usage', { at, provider: 'kimi', keyId, tokens: 10, cost, client });
  return { usage, spend };
}

test('a key\'s cost falls into the minute, hour and day windows of its provider and key', () => {
  const { usage, spend } = tracker();
  spend(0.004, T - 2 * 1440 * MIN); // outside every window
  spend(0.003, T - 180 * MIN); // the day only
  spend(0.002, T - 10 * MIN, undefined, 'k2'); // the hour and the day
  spend(0.001, T); // every window
  const r = usage.report('kimi', ['k1', 'k2'], T, 30);
  expect([r.minute.cost_usd, r.hour.cost_usd, r.day.cost_usd]).toEqual([0.001, 0.003, 0.006]);
  expect(r.keys[0].day.cost_usd).toBe(0.004);
  expect(r.keys[1].hour.cost_usd).toBe(0.002);
  expect(r.day.tokens).toBe(30);
});

test('sums of many small costs carry no float noise', () => {
  const { usage, spend } = tracker();
  for (let i = 0; i < 3; i++) spend(0.1, T);
  expect(usage.report('kimi', ['k1'], T, 1).minute.cost_usd).toBe(0.3);
});

test('per client and per end user: a user\'s cost counts for its client too; the day is 24 clock hours', () => {
  const { usage, spend } = tracker();
  spend(0.5, T - 23 * HOUR - 31 * MIN, 't:aaaa|u:alice'); // 12:30 minus 23h31 = 12:59 a day earlier: outside the 24 clock hours from 13:00
  spend(0.25, T - 23 * HOUR, 't:aaaa|u:alice'); // 13:30 the day before: the day
  spend(0.125, T - 59 * MIN, 't:aaaa|u:bob'); // the hour (59 minutes ago)
  spend(0.0625, T, 't:aaaa'); // no end user: the client only
  spend(1, T, 'ip:10.0.0.1');
  expect(usage.costOf('t:aaaa|u:alice', T)).toEqual({ minute: 0, hour: 0, day: 0.25 });
  expect(usage.costOf('t:aaaa|u:bob', T)).toEqual({ minute: 0, hour: 0.125, day: 0.125 });
  expect(usage.costOf('t:aaaa', T)).toEqual({ minute: 0.0625, hour: 0.1875, day: 0.4375 });
  expect(usage.clientCosts(T)).toEqual([
    { client: 'ip:10.0.0.1', cost_usd: { minute: 1, hour: 1, day: 1 } },
    { client: 't:aaaa', cost_usd: { minute: 0.0625, hour: 0.1875, day: 0.4375 } },
  ]);
  // An hour later bob's cost has left the hour; a day later nothing is left.
  expect(usage.costOf('t:aaaa|u:bob', T + HOUR)).toEqual({ minute: 0, hour: 0, day: 0.125 });
  expect(usage.clientCosts(T + 25 * HOUR)).toEqual([]);
});

test('a call without cost (or without a client) adds no client entry; unknown ids cost nothing', () => {
  const { usage, spend } = tracker();
  spend(0, T, 't:aaaa');
  spend(0.01, T);
  expect(usage.clientCosts(T)).toEqual([]);
  expect(usage.costOf('t:nobody', T)).toEqual({ minute: 0, hour: 0, day: 0 });
});

test('at most `max` clients and users are kept: the least recently charged goes first', () => {
  const { usage, spend } = tracker(3);
  spend(0.1, T, 'ip:a');
  spend(0.1, T, 'ip:b');
  spend(0.1, T, 'ip:c');
  spend(0.1, T + 1, 'ip:a'); // charged again: b is now the oldest
  spend(0.1, T + 2, 'ip:d');
  expect(usage.clientCosts(T + 2).map((c) => c.client)).toEqual(['ip:d', 'ip:a', 'ip:c']);
  for (let i = 0; i < 100; i++) spend(0.1, T + 3, `ip:e|u:user${i}`);
  expect(usage.clientCosts(T + 3).length).toBeLessThanOrEqual(3);
});
