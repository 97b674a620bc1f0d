/** End users (server/limits/endUsers.ts): naming, per-user windows and the bound on tracked users. Fixed clocks. */
import { createHash } from 'node:crypto';
import { endUserHash, endUserOf, EndUsers } from '../../../server/limits/endUsers';

const T = Date.UTC(2026, 10, 22, 12, 30, 10);

test.each([
  ['the header wins', 'alice', { user: 'bob' }, 'alice'],
  ['else OpenAI user', undefined, { user: 'bob' }, 'bob'],
  ['blank header: the body', '  ', { user: 'bob' }, 'bob'],
  ['a non-string user names nobody', undefined, { user: 42 }, undefined],
  ['long names are cut at 128', 'x'.repeat(300), undefined, 'x'.repeat(128)],
])('endUserOf: %s', (_name, header, body, expected) => {
  expect(endUserOf(header, body)).toBe(expected);
});

test('per-minute and per-day windows: the wait until the window that allows the next', () => {
  const u = new EndUsers({ rpm: 2, rpd: 3 });
  // Keys as requestScope makes them (fairKey: `<client>|u:<user hash>`).
  const a = 'ip:127.0.0.1|u:a';
  expect([u.admit(a, T), u.admit(a, T + 1), u.admit(a, T + 2)]).toEqual([0, 0, 50_000 - 2]);
  expect(u.admit(a, T + 50_000)).toBe(0); // next minute
  expect(u.admit(a, T + 50_001)).toBe(Date.UTC(2026, 10, 23) - T - 50_001); // the day's 3 are used
  expect(u.view(T + 50_001, () => true)[0]).toMatchObject({ user: 'a', calls_this_minute: 1, calls_today: 3, rate_limited: 2 });
});

test('at most `max` users are tracked: the least recently seen goes first', () => {
  const u = new EndUsers({}, 3);
  const key = (name: string) => `ip:127.0.0.1|u:${name}`;
  for (const name of ['a', 'b', 'c']) u.admit(key(name), T);
  u.admit(key('a'), T + 1); // a is seen again: b is now the oldest
  u.admit(key('d'), T + 2);
  expect(u.size).toBe(3);
  expect(u.view(T + 2, () => true).map((x) => x.user)).toEqual(['d', 'a', 'c']);
});

test('a decision shared through Redis replaces this instance\'s own; an admitted request is counted here either way', () => {
  const u = new EndUsers({ rpm: 1 });
  expect(u.admit('a', T, 0)).toBe(0); // Redis admits
  expect(u.admit('a', T + 1, 0)).toBe(0); // Redis admits although this instance has seen its one call
  expect(u.admit('a', T + 2, 7_000)).toBe(7_000); // Redis refuses
  expect(u.admit('a', T + 3)).toBe(50_000 - 3); // Redis away: this instance's own counts decide
  expect(u.view(T + 3, () => true)[0]).toMatchObject({ calls_this_minute: 2, rate_limited: 2 });
});

test('view shows each user by the hash part of its key, only for the clients `canSee` accepts', () => {
  const u = new EndUsers({});
  u.admit('t:aaa|u:1111', T);
  u.admit('t:bbb|u:2222', T + 1);
  u.admit('t:aaa|u:3333', T + 2);
  expect(u.view(T + 2, (c) => c === 't:aaa').map((x) => x.user)).toEqual(['3333', '1111']);
  expect(u.view(T + 2, () => true).map((x) => x.user)).toEqual(['3333', '2222', '1111']);
  expect(u.view(T + 2, () => false)).toEqual([]);
});

test('endUserHash: 12 hex digits of the SHA-256 of the name, the same on every instance', () => {
  expect(endUserHash('alice@example.com')).toBe(createHash('sha256').update('alice@example.com').digest('hex').slice(0, 12));
  expect(endUserHash('alice@example.com')).toMatch(/^[0-9a-f]{12}$/);
  expect(endUserHash('alice')).not.toBe(endUserHash('Alice'));
});
