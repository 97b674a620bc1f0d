/**
 * Learned limits (docs/design.md#learned-limits): a 429 that carries `X-RateLimit-Limit` and a reset teaches its scope's
 * limit — so many calls per window — and orche then counts calls per scope and window and stops at
 * it, as it does for configured budgets. Pure decisions only; the stores keep and count them.
 */
import type { CoolScope, Outcome } from './rateLimit';
import { EXPIRY } from '../store/rules';
import { DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS } from './windows';

/** A learned limit lasts a day (the rule table's expiry); a new 429 of the same scope relearns it. */
export const LEARNED_TTL_MS = EXPIRY.learnedMs;

/**
 * Window lengths a limit can have, shortest first: OpenRouter's minute and day, and the shorter ones
 * simulations compress to. The Redis store's LEARN script has the list written into its text.
 */
export const WINDOWS = [SECOND_MS, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, MINUTE_MS, HOUR_MS, DAY_MS];

/**
 * The window a reset implies. A reset within a minute that falls on a whole minute is a per-minute
 * limit (OpenRouter's minute limits reset on the next whole minute); `minuteMs` is that minute,
 * shorter only where a simulation compresses it (ORCHE_MINUTE_MS). A reset on a boundary: the
 * shortest window length that reaches from now to the reset and on whose boundary it falls (an hour,
 * a UTC day, …). A reset on no boundary (a limiter whose windows open at its first call, or run on
 * their own phase) within a minute is a minute; further ahead, the shortest length that reaches it.
 * Either way the windows are anchored at the reset (`windowStart`), not at whole multiples.
 * Undefined when the reset is in the past. A window guessed too short is lengthened by
 * `relearnedWindow` when the next 429 comes.
 */
export function windowFromReset(resetAt: number, now: number, minuteMs = MINUTE_MS): number | undefined {
  const ahead = resetAt - now;
  if (!(ahead > 0)) return undefined;
  if (ahead <= minuteMs && resetAt % minuteMs === 0) return minuteMs;
  const aligned = WINDOWS.find((w) => w >= ahead && resetAt % w === 0);
  if (aligned !== undefined) return aligned;
  return ahead <= minuteMs ? minuteMs : WINDOWS.find((w) => w >= ahead);
}

/**
 * The start of the window of `l` that holds `now`. A learned limit's windows are anchored at the
 * last reset the upstream sent for its scope (`anchor`): they run anchor + k × windowMs, so orche
 * never holds a scope past that reset because of its own guess about where windows fall (docs/design.md#learned-limits).
 * OpenRouter's resets fall on whole minutes and days, so there the windows are whole multiples.
 */
export function windowStart(l: Pick<LearnedLimit, 'windowMs' | 'anchor'>, now: number): number {
  const a = l.anchor ?? 0;
  return a + Math.floor((now - a) / l.windowMs) * l.windowMs;
}

/** Limits of up to a minute and longer ones (hour, day) are two limits of one scope. */
export function sameKind(a: number, b: number): boolean {
  return (a <= MINUTE_MS) === (b <= MINUTE_MS);
}

/**
 * The window in force after a relearn. `current` was learned earlier for the same kind of limit;
 * if it was learned in an earlier window than the one this 429 fell in, counting by it did not
 * prevent the 429: it is too short, and becomes the next length on whose boundary the reset falls
 * (never past a minute for a minute-class limit). A 429 in the same window (concurrent calls) keeps it.
 * A reset on no boundary never lengthens it: such windows open at a first call, and the 429's reset
 * re-anchors them instead.
 */
export function relearnedWindow(inferred: number, current: LearnedLimit | undefined, resetAt: number, now: number): number {
  if (current === undefined || !isLive(current, now) || !sameKind(current.windowMs, inferred)) return inferred;
  let w = Math.max(inferred, current.windowMs);
  if (current.learnedAt < windowStart(current, now)) {
    const cap = current.windowMs <= MINUTE_MS ? MINUTE_MS : DAY_MS;
    const longer = WINDOWS.find((x) => x > current.windowMs && x <= cap && resetAt % x === 0);
    if (longer !== undefined) w = Math.max(w, longer);
  }
  return w;
}

export interface LearnedLimit {
  limit: number;
  windowMs: number;
  /** '429' or 'key_probe'. */
  source: string;
  learnedAt: number;
  /**
   * The reset the upstream last sent for this scope: its windows run anchor + k × windowMs. Absent
   * in state saved before anchors: 0, windows on whole multiples of their length.
   */
  anchor?: number;
}

/** What a store keeps per scope: its learned limits by window length. */
export type LearnedSet = Record<string, LearnedLimit>;

/** What an outcome teaches: the scope of its limit, the limit and the reset it carried. */
export interface Lesson {
  scope: CoolScope;
  limit: number;
  resetAt: number;
}

/** A rate-limited answer with `X-RateLimit-Limit` and a reset teaches the limit of the scope that cooled. */
export function lessonOf(outcome: Outcome, now: number): Lesson | undefined {
  if (outcome.kind !== 'cool' || outcome.status !== 429) return undefined;
  const limit = outcome.rate?.limit;
  const resetAt = outcome.rate?.resetAt ?? outcome.until;
  if (limit === undefined || !Number.isInteger(limit) || limit < 1 || resetAt === undefined || resetAt <= now) return undefined;
  return { scope: outcome.scope, limit, resetAt };
}

/** Only limits learned within a day count. */
export function isLive(l: LearnedLimit, now: number): boolean {
  return now - l.learnedAt < LEARNED_TTL_MS;
}

/**
 * A learned window as the stores keep it: whole milliseconds (a fraction breaks Redis's PEXPIRE) and
 * at least a second. Rounded up: a longer window counts more calls against the limit, the safe side.
 */
export function wholeWindow(ms: number): number {
  return Math.max(SECOND_MS, Math.ceil(ms));
}
