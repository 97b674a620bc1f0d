/**
 * Request windows: OpenRouter counts per whole clock minute and per UTC day, only requests it served.
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

/** Served requests in the current minute (or compressed window) and the current UTC day. */
export class WindowCounter {
  constructor(readonly windowMs: number = MINUTE_MS) {}

  private minute = -1;
  private minuteCount = 0;
  private day = -1;
  private dayCount = 0;

  private roll(now: number): void {
    const minute = Math.floor(now / this.windowMs);
    if (minute !== this.minute) {
      this.minute = minute;
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
    return (Math.floor(now / this.windowMs) + 1) * this.windowMs;
  }

  add(now: number): void {
    this.roll(now);
    this.minuteCount++;
    this.dayCount++;
  }

  clear(): void {
    this.minute = -1;
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

/** Counts a served call against the key's windows, and the account's when the call is limited there. */
export function countServed(key: LimitedKey, account: LimitedAccount, accountLimited: boolean, now: number): void {
  key.counter.add(now);
  if (accountLimited) account.counter.add(now);
}
