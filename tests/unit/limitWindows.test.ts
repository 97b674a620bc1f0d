/** When a limit's window ends (providers/limits/limitWindows.ts), with fixed clocks. */
import { nextMinute, nextUtcMidnight, nextUtcMonday, nextUtcMonth } from '../../providers/limits/limitWindows';

test.each([
  ['Sunday 2026-11-22 12:30:10', Date.UTC(2026, 10, 22, 12, 30, 10), Date.UTC(2026, 10, 22, 12, 31), Date.UTC(2026, 10, 23), Date.UTC(2026, 10, 23), Date.UTC(2026, 11, 1)],
  ['Monday 2026-11-23 00:00:00 (a new week has just begun)', Date.UTC(2026, 10, 23), Date.UTC(2026, 10, 23, 0, 1), Date.UTC(2026, 10, 24), Date.UTC(2026, 10, 30), Date.UTC(2026, 11, 1)],
  ['Thursday 2026-12-31 23:59:59.999', Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(2027, 0, 1), Date.UTC(2027, 0, 4), Date.UTC(2027, 0, 1)],
])('%s', (_name, now, minute, midnight, monday, month) => {
  expect([nextMinute(now), nextUtcMidnight(now), nextUtcMonday(now), nextUtcMonth(now)]).toEqual([minute, midnight, monday, month]);
});
