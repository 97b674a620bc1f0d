/** When a limit's window ends (providers/limits/windows.ts), with fixed clocks. */
import { dayWindow, minuteWindow, nextMinute, nextUtcMidnight, nextUtcMonday, nextUtcMonth } from '../../../providers/limits/windows';

test.each([
  ['Sunday 2026-11-22 12:30:10', Date.UTC(2026, 10, 22, 12, 30, 10), Date.UTC(2026, 10, 22, 12, 31), Date.UTC(2026, 10, 23), Date.UTC(2026, 10, 23), Date.UTC(2026, 11, 1)],
  ['Monday 2026-11-23 00:00:00 (a new week has just begun)', Date.UTC(2026, 10, 23), Date.UTC(2026, 10, 23, 0, 1), Date.UTC(2026, 10, 24), Date.UTC(2026, 10, 30), Date.UTC(2026, 11, 1)],
  ['Thursday 2026-12-31 23:59:59.999', Date.UTC(2026, 11, 31, 23, 59, 59, 999), Date.UTC(2027, 0, 1), Date.UTC(2027, 0, 1), Date.UTC(2027, 0, 4), Date.UTC(2027, 0, 1)],
])('%s', (_name, now, minute, midnight, monday, month) => {
  expect([nextMinute(now), nextUtcMidnight(now), nextUtcMonday(now), nextUtcMonth(now)]).toEqual([minute, midnight, monday, month]);
});

test('a window index and its end agree: the end is the start of the next index', () => {
  const now = Date.UTC(2026, 10, 22, 23, 59, 30);
  expect(minuteWindow(nextMinute(now))).toBe(minuteWindow(now) + 1);
  expect(dayWindow(nextUtcMidnight(now))).toBe(dayWindow(now) + 1);
  expect(nextUtcMidnight(now)).toBe(Date.UTC(2026, 10, 23));
});
