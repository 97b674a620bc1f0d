/**
 * The wait room's pacer for one provider (docs/design.md#pacing-and-fairness): the provider's remaining budget from its keys'
 * learned limits (one inspection), the shared pacing state and waiting count (the store's
 * FairState), and pacing.ts's decision; the served counts per client and end user in the current
 * window for the least-served choice. The window of the served counts is the minute
 * (ORCHE_MINUTE_MS): OpenRouter's free limits count per minute.
 */
import type { KeyPool, ProviderRuntime } from '../keys/keyPool';
import type { ServedView } from './fairQueue';
import { budgetLeft, burstOf, paceRelease } from './pacing';
import type { PaceVerdict, RoomPacer } from './waitRoom';

/** How often a release may lose the race to another instance before it waits a moment. */
const CLAIM_TRIES = 3;
const CLAIM_RETRY_MS = 25;
/**
 * How many releases in a row an instance leaves to another whose waiting client was served less
 * (that instance takes them at the same moment); then it takes one itself, so that a report gone
 * stale (its client already served) holds no release for long.
 */
const YIELD_TRIES = 3;

export class ProviderPacer implements RoomPacer {
  constructor(
    private readonly pool: KeyPool,
    private readonly provider: () => ProviderRuntime,
    private readonly windowMs: number,
  ) {}

  /** Releases left in a row to another instance's less served client. */
  private yielded = 0;

  private get fair() {
    return this.pool.store.fair;
  }

  private get slug(): string {
    return this.provider().config.slug;
  }

  async release(now: number, waiting: number, arrivalRate: number, least = Infinity, dueBy?: number): Promise<PaceVerdict> {
    const p = this.provider();
    const budget = budgetLeft(await this.pool.store.inspect([...p.views.values()], now), now);
    // No known limit (or no usable key): nothing to pace; the pick decides and says when to retry.
    if (budget === undefined) return { go: true, at: now };
    for (let i = 0; i < CLAIM_TRIES; i++) {
      const read = await this.fair.paceState(this.slug, waiting, now, arrivalRate, least);
      const d = paceRelease(read.state, { now, remaining: budget.remaining, windowEnd: budget.windowEnd, waiting: read.waiting, arrivalRate: read.arrivalRate, burst: burstOf(budget), dueBy });
      if (!d.go) return { go: false, at: d.at, budget, paced: d.paced };
      // Contended, and a client served less waits on another instance: that instance takes this release
      // (not a last call: that one is for a request of this instance about to expire).
      if (d.paced && !d.lastCall && read.othersLeast < least && this.yielded < YIELD_TRIES) {
        this.yielded++;
        return { go: false, at: now + CLAIM_RETRY_MS, budget, paced: true };
      }
      if (await this.fair.claimPace(this.slug, read.version, d.state, now)) {
        this.yielded = 0;
        return { go: true, at: now, budget, paced: d.paced, spare: d.spare, lastCall: d.lastCall };
      }
    }
    return { go: false, at: now + CLAIM_RETRY_MS, budget, paced: true };
  }

  async served(now: number, names: { clients: string[]; users: Array<[string, string]> }): Promise<ServedView> {
    const got = await this.fair.served(this.slug, this.window(now), names.clients, names.users);
    const clients = new Map(names.clients.map((c, i) => [c, got.clients[i]]));
    const users = new Map(names.users.map(([c, u], i) => [`${c}\u0000${u}`, got.users[i]]));
    return { client: (c) => clients.get(c) ?? 0, user: (c, u) => users.get(`${c}\u0000${u}`) ?? 0 };
  }

  async giveBack(now: number, waiting: number): Promise<void> {
    for (let i = 0; i < CLAIM_TRIES; i++) {
      const read = await this.fair.paceState(this.slug, waiting, now, 0);
      const s = read.state;
      if (s === undefined || s.windowEnd <= now || s.released === 0) return;
      if (await this.fair.claimPace(this.slug, read.version, { windowEnd: s.windowEnd, released: s.released - 1, nextAt: Math.min(s.nextAt, now) }, now)) return;
    }
  }

  idle(now: number): void {
    void this.fair.paceState(this.slug, 0, now, 0).catch(() => {});
  }

  /** One call served for a request of `who` (client and end user). */
  countServed(client: string, user: string, now: number): Promise<void> {
    return this.fair.countServed(this.slug, this.window(now), this.windowMs, client, user);
  }

  private window(now: number): number {
    return Math.floor(now / this.windowMs);
  }
}
