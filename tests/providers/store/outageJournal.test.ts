/**
 * The outage journal stays small however long Redis is away: picks are summed per counter, other
 * changes are capped (the oldest dropped first). Its merge into a real Redis is in tests/providers/store/redis.test.ts.
 */
import { MAX_CHANGES, OutageJournal, pickCounters } from '../../../providers/store/outageJournal';

const T = Date.UTC(2026, 10, 22, 12, 30, 10);

test('10,000 picks of 3 keys while Redis is away are 8 summed counters, not 10,000 entries', () => {
  const journal = new OutageJournal();
  for (let i = 0; i < 10_000; i++) journal.count(pickCounters(`k${i % 3}`, 'team', 'm:free', true, T + (i % 10)));
  // Per key: its minute and day counters; the shared account: its minute and day counters.
  expect(journal.size).toBe(3 * 2 + 2);
});

test('changes beyond the cap drop the oldest first, and say how many', () => {
  const journal = new OutageJournal();
  for (let i = 0; i < MAX_CHANGES + 5; i++) journal.record({ kind: 'hold', gate: 'c:m', until: T + i, reason: 'upstream', now: T });
  expect(journal.size).toBe(MAX_CHANGES);
  expect(journal.dropped).toBe(5);
});
