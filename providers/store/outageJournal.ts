import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import type { StoreScripts } from './redisScripts';
import { LEARNED_TTL_MS } from '../limits/learnedLimit';
import { dayWindow, minuteWindow, nextMinute, nextUtcMidnight } from '../limits/windows';
import { counterKey } from './names';
import type { CoolRequest, KeyView, LearnRequest } from './types';

/**
 * What changed locally while Redis was away, to be merged into Redis when it returns (docs/design.md#while-redis-is-away): the
 * later deadline wins, the later admin action and the later learned limit win, counters (budgets and
 * the windows of learned limits) add up. A change that no longer matters
 * by then (a deadline past) is dropped. An admin reset of cooldowns during the outage is not
 * replayed (it would clear cooldowns other instances set meanwhile), but it wins over this instance's
 * own earlier changes: it drops the cooldowns and holds recorded before it on the gates it cleared,
 * and so does a reactivation for the key's own gate (`forget`).
 *
 * Bounded: picks that never reached Redis are summed per counter (a long outage costs a few entries
 * per key, not one per request); at most MAX_CHANGES other changes are kept, the oldest dropped first
 * (their deadlines are the likeliest to be past).
 */
export type Change =
  /** `req.until` is the deadline the local store settled on; `gate` the gate it cooled (account resolved). */
  | { kind: 'cool'; req: CoolRequest & { until: number }; gate: string; now: number }
  /** Model congestion or the host's edge hold: a gate name as the scripts know it. */
  | { kind: 'hold'; gate: string; until: number; reason: string; now: number }
  | { kind: 'disabled'; keyId: string; reason: string | null; at: number }
  | { kind: 'account'; account: string; learned: string; at: number }
  | { kind: 'succeed'; view: KeyView; now: number }
  /** A learned limit (`at`: when it was learned): the later learned_at wins. */
  | { kind: 'learn'; req: LearnRequest; at: number }
  /**
   * A pick sent to Redis whose reply never came: its script may have run. Its id (rules.ts pickIdMs)
   * lets Redis tell whether it already counted it.
   */
  | { kind: 'pick'; id: string; counters: Counted[] };

/**
 * A pick's counter: its name, its window (a budget's minute or day index, a learned limit's window
 * start), when that window ends, and how many picks it counts.
 */
export type Counted = [name: string, window: number, endsAt: number, count: number];

/** The counters one pick moves (`account` already resolved). */
export function pickCounters(keyId: string, account: string, model: string, free: boolean, now: number): Counted[] {
  const out: Counted[] = [
    [counterKey.keyMinute(keyId, model), minuteWindow(now), nextMinute(now), 1],
    [counterKey.keyDay(keyId, model), dayWindow(now), nextUtcMidnight(now), 1],
  ];
  if (free) out.push([counterKey.accountMinute(account), minuteWindow(now), nextMinute(now), 1], [counterKey.accountDay(account), dayWindow(now), nextUtcMidnight(now), 1]);
  return out;
}

export const MAX_CHANGES = 10_000;

export class OutageJournal {
  private changes: Change[] = [];
  /** Picks made while Redis was known to be away, summed per counter and window. */
  private counts = new Map<string, Counted>();
  /** The id of the summed picks' entry: kept until Redis took it, so a lost reply cannot add it twice. */
  private countsId: string | null = null;
  dropped = 0;

  get size(): number {
    return this.changes.length + this.counts.size;
  }

  record(change: Change): void {
    this.changes.push(change);
    if (this.changes.length > MAX_CHANGES) {
      this.changes.shift();
      this.dropped++;
    }
  }

  /**
   * An admin reset (or a reactivation) made during the outage: the cooldowns and holds recorded before
   * it on these gates (every gate: 'all') are not merged, as the later admin action wins (docs/design.md#while-redis-is-away).
   */
  forget(gates: ReadonlySet<string> | 'all'): void {
    this.changes = this.changes.filter((c) => !((c.kind === 'cool' || c.kind === 'hold') && (gates === 'all' || gates.has(c.gate))));
  }

  /** A pick that never reached Redis (or, with negative counts, a refund of a call upstream did not serve). */
  count(counters: Counted[]): void {
    for (const [name, window, endsAt, n] of counters) {
      const k = `${name}:${window}`;
      const c = this.counts.get(k);
      if (c) c[3] += n;
      else this.counts.set(k, [name, window, endsAt, n]);
    }
  }

  /**
   * Applies every change to Redis, oldest first, then the summed picks; a change is dropped only once
   * Redis took it, so a merge cut by a new failure resumes where it stopped.
   */
  async mergeInto(redis: Redis & StoreScripts, prefix: string, now: number): Promise<number> {
    let merged = 0;
    while (this.changes.length > 0) {
      const c = this.changes[0];
      await apply(redis, prefix, c, now);
      // A reset during the await (`forget`) may have dropped entries: remove this one by identity.
      const i = this.changes.indexOf(c);
      if (i >= 0) this.changes.splice(i, 1);
      merged++;
    }
    if (this.counts.size > 0) {
      this.countsId ??= `merge:${randomBytes(8).toString('hex')}`;
      const counted = [...this.counts.values()].map((c): Counted => [...c]);
      await redis.orcheAddCounts(prefix, now, this.countsId, counted.length, ...counted.flat());
      // Picks counted locally during the await join the next entry, under a new id.
      for (const [name, window, , n] of counted) {
        const k = `${name}:${window}`;
        const left = this.counts.get(k)![3] - n;
        // A refund makes a count negative: only a count that nets to nothing is done.
        if (left !== 0) this.counts.get(k)![3] = left;
        else this.counts.delete(k);
      }
      this.countsId = null;
      merged += counted.length;
    }
    return merged;
  }
}

async function apply(redis: Redis & StoreScripts, prefix: string, c: Change, now: number): Promise<void> {
  switch (c.kind) {
    case 'cool': {
      const r = c.req;
      if (r.until <= now) return;
      await redis.orcheCool(prefix, c.now, r.keyId, r.account, r.model, r.scope, r.until, r.reason, r.baseMs, r.maxMs, r.strike === false ? 0 : 1);
      return;
    }
    case 'hold':
      if (c.until > now) await redis.orcheCongest(prefix, c.now, c.gate, c.until, c.reason);
      return;
    case 'disabled':
      await redis.orcheMergeDisabled(prefix, now, c.keyId, c.reason ?? '', c.at);
      return;
    case 'account':
      await redis.orcheMergeAccount(prefix, now, c.account, c.learned, c.at);
      return;
    case 'succeed':
      await redis.orcheSucceed(prefix, c.now, c.view.keyId, c.view.account, c.view.model, c.view.free ? '1' : '0');
      return;
    case 'learn': {
      const r = c.req;
      if (now - c.at >= LEARNED_TTL_MS) return;
      await redis.orcheLearn(prefix, c.at, r.keyId, r.account, r.model, r.scope, r.limit, r.windowMs, r.resetAt, r.source, '1', r.lengthen ? '1' : '0', r.used ?? -1);
      return;
    }
    case 'pick':
      await redis.orcheAddCounts(prefix, now, c.id, c.counters.length, ...c.counters.flat());
      return;
  }
}
