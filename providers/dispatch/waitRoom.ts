/**
 * Paced recovery (docs/design.md#pacing-and-fairness) and fair, paced release (docs/design.md#pacing-and-fairness): requests that found no usable key
 * wait here, per provider, and are let through one at a time, least served first (fairQueue.ts),
 * when a key may be usable again — never a herd. Each one let through picks a key (the store counts
 * it atomically against budgets and learned limits); the next goes when that pick is done and the
 * pacer allows: under contention the window's budget is spread over the rest of the window
 * (pacing.ts). With no known limit, after a 429 the room slow-starts: 1, 2, 4, … calls in flight.
 * The clock, timers and pacer are injected, so the rules are tested without waiting.
 */
import { FairQueue, NOBODY_SERVED, type ServedView } from './fairQueue';
import { MinHeap } from './minHeap';
import { type BudgetLeft, soonestRelease } from './pacing';
import { splitFairKey } from './requestClient';
import type { Cancel } from './cancel';

export interface RoomClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

/** The span the recent arrival rate is measured over. */
export const ARRIVALS_MS = 1000;

export const realClock: RoomClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return t;
  },
  clearTimer: (t) => clearTimeout(t as NodeJS.Timeout),
};

/**
 * Why a wait ended without a turn. 'hopeless': the schedule shows it cannot be released before its
 * deadline (`at`: the soonest it could), so it is told at once rather than at the deadline.
 */
export type WaitEnd = 'full' | 'deadline' | 'aborted' | 'hopeless';

export class WaitEnded extends Error {
  constructor(readonly why: WaitEnd, readonly at?: number) {
    super(`wait ended: ${why}`);
  }
}

/** The pacer's verdict on the next release: go now, or not before `at`; and the budget when known. */
export interface PaceVerdict {
  go: boolean;
  at: number;
  budget?: BudgetLeft;
  /** The provider is contended: until the window ends, new requests queue here rather than pick at once. */
  paced?: boolean;
  /** Calls of the window's budget that nobody waiting or expected will need (pacing.ts's `spare`). */
  spare?: number;
  /** The release is a last call (pacing.ts): it goes to the request due soonest, not the least served. */
  lastCall?: boolean;
}

/**
 * A room lets this share of the pacer's spare calls through without asking again: other instances
 * may be letting theirs through too, and their arrivals count in the same spare.
 */
const SPARE_SHARE = 1 / 2;

/**
 * What the room asks before each release (the dispatcher binds it to the provider's keys and the
 * shared state): may one go now, and who was served how much in the current window.
 */
export interface RoomPacer {
  /**
   * `arrivalRate`: requests that joined the line lately, per millisecond. `least`: the fewest calls
   * served in the window to a client waiting here (Infinity: not known), so that a release goes to the
   * least served client of every instance. `dueBy`: the soonest deadline of a request waiting here.
   */
  release(now: number, waiting: number, arrivalRate: number, least?: number, dueBy?: number): Promise<PaceVerdict>;
  served(now: number, names: { clients: string[]; users: Array<[string, string]> }): Promise<ServedView>;
  /** Nobody waits here any more (the shared waiting count drops this instance's). */
  idle(now: number): void;
  /** The last release found no key: it did not use the budget, and the next may go at once. */
  giveBack(now: number, waiting: number): Promise<void>;
}

/** One waiting request; it holds the room's turn between being woken and `picked`/`retry`/`leave`. */
export class Ticket {
  resolve: () => void = () => {};
  reject: (err: WaitEnded) => void = () => {};
  onAbort?: () => void;
  /** In the line (not holding the turn, not gone), and in the room's deadline heap. */
  waiting = false;
  inHeap = false;
  readonly client: string;
  /** The end user within the client ('' when none was named). */
  readonly user: string;
  constructor(who: string, readonly deadline: number, readonly signal?: Cancel) {
    const { client, user } = splitFairKey(who);
    this.client = client;
    this.user = user;
  }
}

export class WaitRoom {
  private readonly queue = new FairQueue<Ticket>();
  /**
   * The waiting tickets by deadline, so that each event looks only at the soonest. A ticket that
   * stopped waiting stays until it comes to the top, then is dropped (each ticket is in it once).
   */
  private readonly deadlines = new MinHeap<Ticket>((t) => t.deadline);
  /** The ticket woken and not yet reported back: at most one at a time. */
  private turn: Ticket | null = null;
  /** The soonest a key may be usable again, as the last failed pick said (0: now). */
  private wakeAt = 0;
  private timer: unknown;
  private timerAt = Infinity;
  /** Slow start: calls let through and still in flight, and how many may be. */
  private inflight = 0;
  private cap = Infinity;
  /** A pacer's answer is awaited: no other release starts meanwhile. */
  private deciding = false;
  /** The budget the pacer last reported, for turning away at once who cannot make it. */
  private budget: BudgetLeft | undefined;
  /** The pacer has reported a budget: the provider's keys have learned limits, and arrivals are paced too. */
  private budgetSeen = false;
  /** This instance told the pacer it has requests waiting (and must say when it has none). */
  private reported = false;
  /** Without a pacer (unit tests of the room alone): served counts kept here, never reset. */
  private readonly localServed = new Map<string, number>();
  /** When requests joined the line in the last ARRIVALS_MS: the arrival rate the pacing holds budget for. */
  private readonly arrivals: number[] = [];
  /** The provider is paced until then (its window's end): new requests queue for their turn. */
  private pacedUntil = 0;
  /** A release being given back to the pacer: the next decision waits for it. */
  private givingBack: Promise<void> | undefined;
  /** Arrivals that may pick without asking the pacer, until `spareUntil` (the window's end): the room's share of its spare calls. */
  private spareAdmits = 0;
  private spareUntil = 0;

  constructor(
    private readonly maxQueue: number,
    private readonly clock: RoomClock = realClock,
    private readonly pacer?: RoomPacer,
  ) {}

  /** Requests are waiting, or one holds the turn: a new request must queue behind them. */
  get busy(): boolean {
    return this.turn !== null || this.queue.size > 0 || this.inflight >= this.cap || this.clock.now() < this.pacedUntil;
  }

  /**
   * Whether what a request is served must be counted: the provider's budget is known (its arrivals
   * are paced, and contention may come within the window) or requests wait. Otherwise nobody reads
   * the counts, and counting would cost a store call per request (a round trip on Redis).
   */
  get countsServed(): boolean {
    return this.budgetSeen || this.busy;
  }

  /**
   * A new request that did not queue (the room was not busy): it counts in the arrival rate the
   * pacing holds budget for.
   */
  private noteArrival(): void {
    const now = this.clock.now();
    this.arrivals.push(now);
    if (this.arrivals.length > 64 && this.arrivals[0] <= now - ARRIVALS_MS) this.arrivalRate(now);
  }

  /**
   * A new request found the room not busy: may it pick at once? Once the provider's budget is known,
   * the pacer decides for arrivals too, so that a burst of demand at a window's start is paced
   * before anyone has had to wait (false: it queues, least served first). Without a known budget, or
   * when the pacer cannot answer, it goes. While the window has calls nobody will need (the pacer's
   * last `spare`), a share of them go without asking: demand below the budget is not slowed by a
   * store call per request.
   */
  admit(): true | Promise<boolean> {
    this.noteArrival();
    const pacer = this.pacer;
    if (!pacer || !this.budgetSeen) return true;
    if (this.spareAdmits > 0 && this.clock.now() < this.spareUntil) {
      this.spareAdmits--;
      return true;
    }
    return this.admitPaced(pacer);
  }

  private async admitPaced(pacer: RoomPacer): Promise<boolean> {
    const now = this.clock.now();
    try {
      const verdict = await this.ask(pacer, now);
      if (verdict.paced && verdict.budget) this.pacedUntil = verdict.budget.windowEnd;
      if (verdict.go) return true;
      this.wakeAt = Math.max(this.wakeAt, verdict.at);
      // It joins the line next, which counts its arrival.
      this.arrivals.pop();
      return false;
    } catch {
      return true;
    }
  }

  /** How many calls may be in flight from the room now (Infinity: no slow start). */
  get concurrency(): number {
    return this.cap;
  }

  /**
   * Waits in line until it is this request's turn to pick. `retryAt`: when a key may be usable
   * (undefined: as soon as the turn comes). Rejects with WaitEnded when the line is full, at the
   * deadline, or when the signal aborts.
   */
  join(client: string, deadline: number, retryAt: number | undefined, signal?: Cancel): Promise<Ticket> {
    const t = new Ticket(client, deadline, signal);
    const soonest = this.soonest(this.lineLength(t), this.clock.now());
    if (soonest > deadline) return Promise.reject(new WaitEnded('hopeless', soonest));
    if (this.queue.size >= this.maxQueue && !this.makeRoomFor(t.client)) return Promise.reject(new WaitEnded('full'));
    this.arrivals.push(this.clock.now());
    const done = this.park(t);
    this.queue.push(t.client, t, t.user);
    this.wait(t);
    // A pick that just failed knows best when a key may be usable again.
    if (retryAt !== undefined) this.wakeAt = retryAt;
    this.schedule();
    return done.then(() => t);
  }

  /**
   * The ticket holding the turn found no key: first in its client's line again, and the room waits
   * until `retryAt` (or a `kick`) before the next turn.
   */
  retry(t: Ticket, retryAt: number): Promise<void> {
    if (this.turn === t) {
      this.turn = null;
      // Its release bought nothing (a trial call held the key, another instance took the budget): the pacing gets it back.
      if (this.pacer) this.givingBack = this.pacer.giveBack(this.clock.now(), this.queue.size + 1).catch(() => {});
    }
    const done = this.park(t);
    this.queue.unshift(t.client, t, t.user);
    this.wait(t);
    this.wakeAt = retryAt;
    this.schedule();
    return done;
  }

  /** The ticket holding the turn picked a key: the next may go at once. Call `finished` when its call ends. */
  picked(t: Ticket): void {
    if (this.turn === t) this.turn = null;
    // With a pacer the dispatcher counts what was served, in the shared state; without, the room does.
    if (!this.pacer) {
      this.localServed.set(t.client, (this.localServed.get(t.client) ?? 0) + 1);
      this.localServed.set(`${t.client}\u0000${t.user}`, (this.localServed.get(`${t.client}\u0000${t.user}`) ?? 0) + 1);
    }
    this.inflight++;
    this.schedule();
  }

  /**
   * A call let through by the room ended. A 429 without a learned limit starts the slow start over
   * at one call in flight; each success allows one more (1, 2, 4, … per round).
   */
  finished(outcome: 'success' | 'rate_limited_unknown' | 'other'): void {
    this.inflight = Math.max(0, this.inflight - 1);
    if (outcome === 'rate_limited_unknown') this.cap = 1;
    // One more per success, as TCP's slow start: the calls in flight double with each round.
    else if (outcome === 'success' && this.cap !== Infinity) this.cap++;
    this.schedule();
  }

  /**
   * A call the room did not let through met a 429 that taught no limit, and its request is about to
   * wait here: the room slow-starts as if the room had sent it. Call right before `join`, which
   * schedules (an empty room ends the slow start at once).
   */
  slowStart(): void {
    this.cap = 1;
  }

  /** The ticket gives up (error, fallback): it leaves the line or gives back the turn. */
  leave(t: Ticket): void {
    this.unpark(t);
    t.waiting = false;
    if (this.turn === t) this.turn = null;
    else this.queue.remove(t.client, t, t.user);
    this.schedule();
  }

  /** Something may have freed a key (a success, a reset of cooldowns): the next turn need not wait. */
  kick(): void {
    this.wakeAt = 0;
    this.schedule();
  }

  /** The ticket is in the line: its deadline counts. */
  private wait(t: Ticket): void {
    t.waiting = true;
    if (!t.inHeap) {
      t.inHeap = true;
      this.deadlines.push(t);
    }
  }

  private park(t: Ticket): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      t.resolve = resolve;
      t.reject = reject;
      if (t.signal) {
        t.onAbort = () => this.expire(t, 'aborted');
        if (t.signal.aborted) queueMicrotask(t.onAbort);
        else t.signal.addEventListener('abort', t.onAbort, { once: true });
      }
    });
  }

  private unpark(t: Ticket): void {
    if (t.onAbort && t.signal) t.signal.removeEventListener('abort', t.onAbort);
    t.onAbort = undefined;
  }

  private expire(t: Ticket, why: WaitEnd, at?: number): void {
    if (!this.queue.remove(t.client, t, t.user)) return;
    t.waiting = false;
    this.unpark(t);
    t.reject(new WaitEnded(why, at));
    this.schedule();
  }

  /**
   * The line is full: the client holding the most waiting requests gives up its newest, unless the
   * newcomer's client would then hold as many — so no client holds more than its share while
   * others wait (docs/design.md#pacing-and-fairness). False when the newcomer is the one to turn away.
   */
  private makeRoomFor(client: string): boolean {
    const biggest = this.queue.largest();
    if (biggest === undefined || this.queue.countOf(biggest) <= this.queue.countOf(client) + 1) return false;
    const victim = this.queue.newest(biggest)!;
    this.expire(victim.item, 'full');
    return true;
  }

  /**
   * Requests of the ticket's own line (client and end user) that must go before it: those ahead of
   * it that cannot have left by its deadline (their own deadline is no sooner). Those with a sooner
   * deadline may expire first and free their place, so they do not count against it.
   */
  private lineLength(t: Ticket): number {
    for (const line of this.queue.lines()) if (line.client === t.client && line.user === t.user) return line.items.filter((o) => o.deadline >= t.deadline).length;
    return 0;
  }

  /** The soonest a request with `ahead` of its line before it can be released (now when no budget is known). */
  private soonest(ahead: number, now: number): number {
    const b = this.budget;
    if (b === undefined || now >= b.windowEnd) return now;
    return soonestRelease(b, ahead, now);
  }

  /** Turns away every waiting request that, by its place in its line, cannot go before its deadline. */
  private turnAwayHopeless(now: number): void {
    const gone: Array<[Ticket, number]> = [];
    for (const line of this.queue.lines()) {
      let latest = -Infinity;
      line.items.forEach((t, i) => {
        // Deadlines mostly grow along a line: then nobody ahead outlasts it, without a count.
        let ahead = 0;
        if (t.deadline <= latest) for (let j = 0; j < i; j++) if (line.items[j].deadline >= t.deadline) ahead++;
        latest = Math.max(latest, t.deadline);
        const at = this.soonest(ahead, now);
        if (at > t.deadline) gone.push([t, at]);
      });
    }
    for (const [t, at] of gone) this.expire(t, 'hopeless', at);
  }

  /** The waiting ticket due soonest; tickets no longer waiting are dropped from the top of the heap on the way. */
  private dueSoonest(): Ticket | undefined {
    let t = this.deadlines.peek();
    while (t !== undefined && !t.waiting) {
      this.deadlines.pop();
      t.inHeap = false;
      t = this.deadlines.peek();
    }
    return t;
  }

  /** The next ticket, least served first, takes the turn. */
  private release(served: ServedView): void {
    if (this.turn !== null) return;
    const next = this.queue.shift(served);
    if (next) this.give(next.item);
  }

  /** The ticket, out of the line, takes the turn and is woken. */
  private give(t: Ticket): void {
    this.turn = t;
    t.waiting = false;
    this.unpark(t);
    t.resolve();
  }

  private readonly localView: ServedView = {
    client: (c) => this.localServed.get(c) ?? 0,
    user: (c, u) => this.localServed.get(`${c}\u0000${u}`) ?? 0,
  };

  /** Requests per millisecond that joined in the last ARRIVALS_MS. */
  private arrivalRate(now: number): number {
    let old = 0;
    while (old < this.arrivals.length && this.arrivals[old] <= now - ARRIVALS_MS) old++;
    if (old > 0) this.arrivals.splice(0, old);
    const n = this.arrivals.length;
    return n / ARRIVALS_MS;
  }

  /** The pacer's verdict on a release now; the budget it reports is kept for turning away the hopeless. */
  private async ask(pacer: RoomPacer, now: number, least?: number, dueBy?: number): Promise<PaceVerdict> {
    const verdict = await pacer.release(now, this.queue.size, this.arrivalRate(now), least, dueBy);
    this.budget = verdict.budget;
    if (verdict.budget) this.budgetSeen = true;
    this.spareAdmits = verdict.go && !verdict.paced && verdict.budget ? Math.floor((verdict.spare ?? 0) * SPARE_SHARE) : 0;
    this.spareUntil = verdict.budget?.windowEnd ?? 0;
    return verdict;
  }

  /** Asks the pacer whether one may go now, and to whom; then schedules again. */
  private async decide(pacer: RoomPacer): Promise<void> {
    try {
      if (this.givingBack) await this.givingBack;
      this.givingBack = undefined;
      const now = this.clock.now();
      this.reported = true;
      // The counts first: the pacer compares this room's least served client with other instances'.
      let served = NOBODY_SERVED;
      let least = Infinity;
      try {
        const names = this.queue.waitingNames();
        served = await pacer.served(now, names);
        for (const c of names.clients) least = Math.min(least, served.client(c));
      } catch {
        // Without the counts, the oldest request goes: a turn is not lost for want of them.
      }
      const verdict = await this.ask(pacer, now, least, this.dueSoonest()?.deadline);
      this.pacedUntil = verdict.paced && verdict.budget ? verdict.budget.windowEnd : 0;
      if (verdict.budget) this.turnAwayHopeless(this.clock.now());
      if (!verdict.go) {
        this.wakeAt = Math.max(this.wakeAt, verdict.at);
        return;
      }
      if (this.queue.size === 0 || this.turn !== null) return;
      const due = verdict.lastCall ? this.dueSoonest() : undefined;
      if (due && this.queue.remove(due.client, due, due.user)) this.give(due);
      else this.release(served);
    } catch {
      // A pacer that cannot answer does not hold the line: the request goes, its pick decides.
      this.release(NOBODY_SERVED);
    } finally {
      this.deciding = false;
      this.schedule();
    }
  }

  /**
   * One timer for the room: the next turn when a key may be usable, or the soonest deadline of a
   * waiting request, whichever comes first. Wakes the next ticket when the turn is free, a key may
   * be usable and the slow start allows.
   */
  private schedule(): void {
    const now = this.clock.now();
    if (this.queue.size > 0 && this.turn === null && !this.deciding && this.inflight < this.cap && this.wakeAt <= now) {
      if (this.pacer) {
        this.deciding = true;
        void this.decide(this.pacer);
      } else this.release(this.localView);
    }
    // Only the soonest deadlines: those due are turned away.
    for (let t = this.dueSoonest(); t !== undefined && t.deadline <= now; t = this.dueSoonest()) {
      this.deadlines.pop();
      t.inHeap = false;
      t.waiting = false;
      this.queue.remove(t.client, t, t.user);
      this.unpark(t);
      t.reject(new WaitEnded('deadline'));
    }
    let soonest = this.deadlines.peek()?.deadline ?? Infinity;
    if (this.queue.size === 0) {
      // The demand ended: so does the slow start.
      if (this.turn === null && this.inflight === 0) this.cap = Infinity;
      this.clearTimer();
      if (this.reported && !this.deciding) {
        this.reported = false;
        this.pacer?.idle(now);
      }
      return;
    }
    // A decision under way reschedules when it ends (the pacer's store calls time out), and the
    // timer stays as it is meanwhile: a decision is not a moment to wait for.
    if (this.deciding) return;
    if (this.turn === null && this.inflight < this.cap) soonest = Math.min(soonest, Math.max(this.wakeAt, now));
    if (soonest === this.timerAt) return;
    this.clearTimer();
    this.timerAt = soonest;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.schedule();
    }, soonest - now);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
