import type Redis from 'ioredis';
import type { StoreScripts } from './redisScripts';
import { counterKey, DAY_MS, dayWindow, MINUTE_MS, minuteWindow, type CoolRequest, type KeyView } from './types';

/**
 * What changed locally while Redis was away, in order, to be merged into Redis when it returns
 * (SPEC §7): the later deadline wins, the later admin action wins, counters add up. A change that
 * no longer matters by then (a deadline past) is dropped. An admin reset of cooldowns during the
 * outage is not replayed: it would clear cooldowns other instances set meanwhile.
 */
export type Change =
  /** `req.until` is the deadline the local store settled on. */
  | { kind: 'cool'; req: CoolRequest & { until: number }; now: number }
  /** Model congestion or the host's edge hold: a gate name as the scripts know it. */
  | { kind: 'hold'; gate: string; until: number; reason: string; now: number }
  | { kind: 'disabled'; keyId: string; reason: string | null; at: number }
  | { kind: 'account'; account: string; learned: string; at: number }
  | { kind: 'succeed'; view: KeyView; now: number }
  /** One pick: its budget counters (`account` already resolved), and its id (see rules.ts pickIdMs). */
  | { kind: 'pick'; id: string; keyId: string; account: string; model: string; free: boolean; now: number };

export class OutageJournal {
  private changes: Change[] = [];

  get size(): number {
    return this.changes.length;
  }

  record(change: Change): void {
    this.changes.push(change);
  }

  /**
   * Applies every change to Redis, oldest first; a change is dropped only once Redis took it, so a
   * merge cut by a new failure resumes where it stopped. A run of picks goes in one script.
   */
  async mergeInto(redis: Redis & StoreScripts, prefix: string, now: number): Promise<number> {
    let merged = 0;
    while (this.changes.length > 0) {
      const batch = this.changes[0].kind === 'pick' ? this.takePicks() : [this.changes[0]];
      await this.apply(redis, prefix, batch, now);
      this.changes.splice(0, batch.length);
      merged += batch.length;
    }
    return merged;
  }

  /** The leading run of picks (taken off the journal only after Redis added them). */
  private takePicks(): Change[] {
    let n = 0;
    while (n < this.changes.length && this.changes[n].kind === 'pick') n++;
    return this.changes.slice(0, n);
  }

  private async apply(redis: Redis & StoreScripts, prefix: string, batch: Change[], now: number): Promise<void> {
    const c = batch[0];
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
      case 'pick': {
        const args: Array<string | number> = [];
        for (const p of batch as Array<Extract<Change, { kind: 'pick' }>>) {
          const counters: Array<[string, number, number]> = [
            [counterKey.keyMinute(p.keyId, p.model), minuteWindow(p.now), MINUTE_MS],
            [counterKey.keyDay(p.keyId, p.model), dayWindow(p.now), DAY_MS],
          ];
          if (p.free) counters.push([counterKey.accountMinute(p.account), minuteWindow(p.now), MINUTE_MS], [counterKey.accountDay(p.account), dayWindow(p.now), DAY_MS]);
          args.push(p.id, counters.length, ...counters.flat());
        }
        await redis.orcheAddCounts(prefix, now, ...args);
        return;
      }
    }
  }
}
