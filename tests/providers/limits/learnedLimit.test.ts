/** The pure rules of learned limits (providers/limits/learnedLimit.ts), with fixed clocks. */
import { isLive, lessonOf, relearnedWindow, windowFromReset, windowStart } from '../../../providers/limits/learnedLimit';
import { classifyResponse } from '../../../providers/limits/rateLimit';

const at = (h: number, m: number, s: number, ms = 0) => Date.UTC(2026, 10, 22, h, m, s, ms);

describe('windowFromReset: a whole minute within a minute is the minute; else the shortest window that reaches the reset on its boundary; off every boundary, the minute or the shortest that reaches it', () => {
  test.each([
    ['per-minute reset 50 s ahead', at(12, 31, 0), at(12, 30, 10), 60_000, 60_000],
    ['per-minute reset 2 s ahead', at(12, 31, 0), at(12, 30, 58), 60_000, 60_000],
    ['compressed minute of 10 s, 7 s ahead', at(12, 30, 20), at(12, 30, 13), 10_000, 10_000],
    ['compressed minute of 10 s, 3 s ahead', at(12, 30, 20), at(12, 30, 17), 10_000, 10_000],
    ['a 10 s window with the real minute: the shortest aligned length (5 s, lengthened by the next 429)', at(12, 30, 20), at(12, 30, 17), 60_000, 5_000],
    ['daily reset at 00:00 UTC', Date.UTC(2026, 10, 23), at(12, 30, 10), 60_000, 86_400_000],
    ['hourly reset', at(13, 0, 0), at(12, 30, 10), 60_000, 3_600_000],
  ])('%s', (_name, reset, now, minuteMs, expected) => {
    expect(windowFromReset(reset, now, minuteMs)).toBe(expected);
  });

  test('a reset in the past teaches nothing', () => {
    expect(windowFromReset(at(12, 30, 0), at(12, 30, 10))).toBeUndefined();
  });

  // A limiter whose windows open at its first call sends resets on no boundary. They used to teach
  // nothing, so such a scope was never counted and each window cost a 429 per call in flight.
  test.each([
    ['off every boundary within the minute: the minute', at(12, 30, 20, 7), at(12, 30, 10), 60_000, 60_000],
    ['off every boundary within a compressed minute: that minute', at(12, 30, 17, 431), at(12, 30, 10), 10_000, 10_000],
    ['off every boundary, further ahead: the shortest length that reaches it', at(12, 50, 20, 7), at(12, 30, 10), 60_000, 3_600_000],
  ])('%s', (_name, reset, now, minuteMs, expected) => {
    expect(windowFromReset(reset, now, minuteMs)).toBe(expected);
  });
});

describe('relearnedWindow', () => {
  const learned = (windowMs: number, learnedAt: number) => ({ limit: 5, windowMs, learnedAt, source: '429' });
  test.each([
    ['nothing learned: the inferred window', 5_000, undefined, at(12, 30, 30), at(12, 30, 26), 5_000],
    ['same window (concurrent 429s): kept', 5_000, learned(5_000, at(12, 30, 16)), at(12, 30, 20), at(12, 30, 17), 5_000],
    ['a later window: too short, the next length on the reset boundary', 5_000, learned(5_000, at(12, 30, 16)), at(12, 30, 30), at(12, 30, 26), 10_000],
    ['never shortens', 5_000, learned(10_000, at(12, 30, 16)), at(12, 30, 20), at(12, 30, 17), 10_000],
    ['a minute-class limit never grows past a minute', 60_000, learned(60_000, at(12, 28, 10)), at(12, 31, 0), at(12, 30, 10), 60_000],
    ['a day limit beside a minute one is another limit', 86_400_000, learned(10_000, at(12, 30, 16)), Date.UTC(2026, 10, 23), at(12, 30, 26), 86_400_000],
    ['an expired limit is forgotten', 5_000, learned(10_000, at(12, 30, 16) - 86_400_000), at(12, 30, 30), at(12, 30, 26), 5_000],
  ])('%s', (_name, inferred, current, reset, now, expected) => {
    expect(relearnedWindow(inferred, current, reset, now)).toBe(expected);
  });
});

describe('lessonOf: what a classified answer teaches', () => {
  const now = at(12, 30, 10);
  // The simulator's free-models-per-min body, byte for byte OpenRouter's (docs/design.md#learned-limits, "429 bodies seen in real use" #1).
  const freePerMin = {
    error: {
      code: 429,
      message: 'Rate limit exceeded: free-models-per-min. ',
      metadata: { headers: { 'X-RateLimit-Limit': '20', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(at(12, 31, 0)) }, provider_name: null },
    },
    user_id: 'user_x',
  };

  test('a free-models-per-min 429 with the limit in metadata.headers teaches the account-free scope', () => {
    expect(lessonOf(classifyResponse(429, {}, freePerMin, now), now)).toEqual({ scope: 'account_free', limit: 20, resetAt: at(12, 31, 0) });
  });

  test('the response headers teach it as well', () => {
    const body = { error: { code: 429, message: 'Rate limit exceeded' } };
    const headers = { 'x-ratelimit-limit': '8', 'x-ratelimit-reset': String(at(12, 31, 0)) };
    expect(lessonOf(classifyResponse(429, headers, body, now), now)).toEqual({ scope: 'key', limit: 8, resetAt: at(12, 31, 0) });
  });

  test('no limit, no lesson; no 429, no lesson', () => {
    expect(lessonOf(classifyResponse(429, {}, { error: { code: 429, message: 'Rate limit exceeded', metadata: { error_type: 'rate_limit_exceeded' } } }, now), now)).toBeUndefined();
    expect(lessonOf(classifyResponse(200, {}, { choices: [] }, now), now)).toBeUndefined();
  });
});

describe('windowStart: learned windows are anchored at the reset the upstream sent (docs/design.md#learned-limits)', () => {
  test('a reset on a whole minute: windows on whole minutes, as before anchors', () => {
    const l = { windowMs: 60_000, anchor: at(12, 31, 0) };
    expect([windowStart(l, at(12, 30, 10)), windowStart(l, at(12, 31, 0)), windowStart(l, at(12, 33, 59, 999))]).toEqual([at(12, 30, 0), at(12, 31, 0), at(12, 33, 0)]);
  });
  test('a reset off every boundary (12:31:07.250): windows run from it, both ways', () => {
    const l = { windowMs: 60_000, anchor: at(12, 31, 7, 250) };
    expect([windowStart(l, at(12, 31, 7, 249)), windowStart(l, at(12, 31, 7, 250)), windowStart(l, at(12, 35, 0))]).toEqual([at(12, 30, 7, 250), at(12, 31, 7, 250), at(12, 34, 7, 250)]);
  });
  test('a limit saved before anchors counts on whole multiples', () => {
    expect(windowStart({ windowMs: 10_000 }, at(12, 30, 17))).toBe(at(12, 30, 10));
  });
});

test('isLive: a day', () => {
  const l = { limit: 1, windowMs: 1000, learnedAt: 0, source: '429' };
  expect([isLive(l, 86_399_999), isLive(l, 86_400_000)]).toEqual([true, false]);
});
