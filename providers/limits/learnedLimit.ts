/**
 * Learned limits (SPEC §7): a 429 that carries `X-RateLimit-Limit` and a reset teaches its scope's
 * limit — so many calls per window — and orche then counts calls per scope and window and stops at
 * it, as it does for configured budgets. Pure decisions only; the stores keep and count them.
 */
import type { CoolScope, Outcome } from './rateLimit';
import { EXPIRY } from '../store/rules';

/** A learned limit lasts a day (the rule table's expiry); a new 429 of the same scope relearns it. */
export const LEARNED_TTL_MS = EXPIRY.learnedMs;

/**
 * Window lengths a limit can have, shortest first: OpenRouter's minute and day, and the shorter ones
 * simulations compress to. The Redis store's LEARN script has the list written into its text.
 */
export const WINDOWS = [1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000, 3_600_000, 86_400_000];

/**
 * The window a reset implies. A reset within a minute that falls on a whole minute is a per-minute
 * limit (OpenRouter's minute limits reset on the next whole minute); `minuteMs` is that minute,
 * shorter only where a simulation compresses it (ORCHE_MINUTE_MS). Otherwise the shortest window
 * length that reaches from now to the reset and on whose boundary it falls (an hour, a UTC day, …).
 * Undefined when the reset is in the past or fits none. A window guessed too short is lengthened by
 * `relearnedWindow` when the next 429 comes.
 */
export function windowFromReset(resetAt: number, now: number, minuteMs = 60_000): number | undefined {
  const ahead = resetAt - now;
  if (!(ahead > 0)) return undefined;
  if (ahead <= minuteMs && resetAt % minuteMs === 0) return minuteMs;
  return WINDOWS.find((w) => w >= ahead && resetAt % w === 0);
}

/** Limits of up to a minute and longer ones (hour, day) are two limits of one scope. */
export function sameKind(a: number, b: number): boolean {
  return (a <= 60_000) === (b <= 60_000);
}

/**
 * The window in force after a relearn. `current` was learned earlier for the same kind of limit;
 * if it was learned in an earlier window than the one this 429 fell in, counting by it did not
 * prevent the 429: it is too short, and becomes the next length on whose boundary the reset falls
 * (never past a minute for a minute-class limit). A 429 in the same window (concurrent calls) keeps it.
 */
export function relearnedWindow(inferred: number, current: LearnedLimit | undefined, resetAt: number, now: number): number {
  if (current === undefined || !isLive(current, now) || !sameKind(current.windowMs, inferred)) return inferred;
  let w = Math.max(inferred, current.windowMs);
  if (current.learnedAt < Math.floor(now / current.windowMs) * current.windowMs) {
    const cap = current.windowMs <= 60_000 ? 60_000 : 86_400_000;
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

/** `"10s"`, `"1m"`, `"1h"`, `"1d"` or a number of seconds → milliseconds (GET /key's rate_limit.interval). */
export function parseInterval(value: unknown): number | undefined {
  if (typeof value === 'number' && value > 0) return value * 1000;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  const ms = Number(m[1]) * unit;
  return ms > 0 ? ms : undefined;
}

/**
 * A learned window as the stores keep it: whole milliseconds (a fraction breaks Redis's PEXPIRE) and
 * at least a second. Rounded up: a longer window counts more calls against the limit, the safe side.
 */
export function wholeWindow(ms: number): number {
  return Math.max(1000, Math.ceil(ms));
}

/** Counter name of a learned limit's window, beside the budget counters (`counterKey`). */
export function learnedCounter(gateName: string, windowMs: number): string {
  return `l:${gateName}|${windowMs}`;
}
