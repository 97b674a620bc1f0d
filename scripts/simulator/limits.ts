/**
 * Request windows: OpenRouter counts per whole clock minute and per UTC day the requests it admitted:
 * a call it passed on counts whatever the provider answered (a 5xx too); its own refusals (429s,
 * 401, 402) do not (docs/design.md#learned-limits).
 * The "minute" can be shortened (`windowMs`) so a benchmark compresses minutes into seconds.
 */

export const MINUTE_MS = 60_000;
export const DAY_MS = 86_400_000;

export function nextMinute(now: number): number {
  return (Math.floor(now / MINUTE_MS) + 1) * MINUTE_MS;
}

export function nextUtcDay(now: number): number {
  return (Math.floor(now / DAY_MS) + 1) * DAY_MS;
}

/**
 * How short windows open: `aligned` on whole multiples of their length, as OpenRouter's minute
 * (resets on the next whole minute); `first-call` at the first counted call after the last window
 * ended, as a limiter that starts its clock when it is first used (resets at that call + the length).
 */
export type WindowMode = 'aligned' | 'first-call';

/** Counted requests in the current minute (or compressed window) and the current UTC day. */
export class WindowCounter {
  constructor(readonly windowMs: number = MINUTE_MS, readonly mode: WindowMode = 'aligned') {}

  /** The current short window: its index (aligned) or its start (first-call; -Infinity: none open). */
  private minute = -Infinity;
  private minuteCount = 0;
  private day = -1;
  private dayCount = 0;

  private roll(now: number): void {
    if (this.mode === 'aligned') {
      const minute = Math.floor(now / this.windowMs);
      if (minute !== this.minute) {
        this.minute = minute;
        this.minuteCount = 0;
      }
    } else if (now >= this.minute + this.windowMs) {
      this.minute = -Infinity;
      this.minuteCount = 0;
    }
    const day = Math.floor(now / DAY_MS);
    if (day !== this.day) {
      this.day = day;
      this.dayCount = 0;
    }
  }

  perMinute(now: number): number {
    this.roll(now);
    return this.minuteCount;
  }

  perDay(now: number): number {
    this.roll(now);
    return this.dayCount;
  }

  /** When the current short window ends. */
  nextReset(now: number): number {
    if (this.mode === 'aligned') return (Math.floor(now / this.windowMs) + 1) * this.windowMs;
    this.roll(now);
    return this.minute === -Infinity ? now + this.windowMs : this.minute + this.windowMs;
  }

  add(now: number): void {
    this.roll(now);
    if (this.mode === 'first-call' && this.minute === -Infinity) this.minute = now;
    this.minuteCount++;
    this.dayCount++;
  }

  /** Calls counted today before the simulator knew of them (an account used elsewhere since 00:00 UTC). */
  seedDay(now: number, used: number): void {
    this.roll(now);
    this.dayCount = Math.max(this.dayCount, used);
  }

  clear(): void {
    this.minute = -Infinity;
    this.day = -1;
    this.minuteCount = 0;
    this.dayCount = 0;
  }
}

export interface LimitedAccount {
  id: string;
  freeRpm: number;
  freeRpd: number;
  highBalance: boolean;
  counter: WindowCounter;
}

export interface LimitedKey {
  rpm?: number;
  rpd?: number;
  counter: WindowCounter;
}

export type LimitOutcome = 'key-rate-limit' | 'free-per-min' | 'free-per-day';

export interface LimitHit {
  outcome: LimitOutcome;
  limit: number;
  resetAt: number;
}

/**
 * The first exhausted window, day before minute (waiting out the minute would not help).
 * `accountLimited`: whether this call counts against the account's free-model limits.
 */
export function findLimitHit(key: LimitedKey, account: LimitedAccount, accountLimited: boolean, now: number): LimitHit | undefined {
  if (key.rpd !== undefined && key.counter.perDay(now) >= key.rpd) {
    return { outcome: 'key-rate-limit', limit: key.rpd, resetAt: nextUtcDay(now) };
  }
  if (key.rpm !== undefined && key.counter.perMinute(now) >= key.rpm) {
    return { outcome: 'key-rate-limit', limit: key.rpm, resetAt: key.counter.nextReset(now) };
  }
  if (!accountLimited) return undefined;
  if (account.counter.perDay(now) >= account.freeRpd) {
    return { outcome: 'free-per-day', limit: account.freeRpd, resetAt: nextUtcDay(now) };
  }
  if (account.counter.perMinute(now) >= account.freeRpm) {
    return { outcome: 'free-per-min', limit: account.freeRpm, resetAt: account.counter.nextReset(now) };
  }
  return undefined;
}

/** Counts an admitted call against the key's windows, and the account's when the call is limited there. */
export function countServed(key: LimitedKey, account: LimitedAccount, accountLimited: boolean, now: number): void {
  key.counter.add(now);
  if (accountLimited) account.counter.add(now);
}
