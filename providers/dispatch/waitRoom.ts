/**
 * Paced recovery (SPEC §7): requests that found no usable key wait here, per provider, and are let
 * through one at a time in fair order (fairQueue.ts) when a key may be usable again — never a herd.
 * Each one let through picks a key (the store counts it atomically against budgets and learned
 * limits); the next goes as soon as that pick is done, so no more are released than the remaining
 * budget allows. With no known limit, after a 429 the room slow-starts: 1, 2, 4, … calls in flight.
 * The clock and timers are injected, so the rules are tested without waiting.
 */
import { FairQueue } from './fairQueue';
import { MinHeap } from './minHeap';

export interface RoomClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

export const realClock: RoomClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return t;
  },
  clearTimer: (t) => clearTimeout(t as NodeJS.Timeout),
};

/** Why a wait ended without a turn. */
export type WaitEnd = 'full' | 'deadline' | 'aborted';

export class WaitEnded extends Error {
  constructor(readonly why: WaitEnd) {
    super(`wait ended: ${why}`);
  }
}

/** One waiting request; it holds the room's turn between being woken and `picked`/`retry`/`leave`. */
export class Ticket {
  resolve: () => void = () => {};
  reject: (err: WaitEnded) => void = () => {};
  onAbort?: () => void;
  /** In the line (not holding the turn, not gone), and in the room's deadline heap. */
  waiting = false;
  inHeap = false;
  constructor(readonly client: string, readonly deadline: number, readonly signal?: AbortSignal) {}
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

  constructor(
    private readonly maxQueue: number,
    private readonly clock: RoomClock = realClock,
  ) {}

  /** Requests are waiting, or one holds the turn: a new request must queue behind them. */
  get busy(): boolean {
    return this.turn !== null || this.queue.size > 0 || this.inflight >= this.cap;
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
  join(client: string, deadline: number, retryAt: number | undefined, signal?: AbortSignal): Promise<Ticket> {
    if (this.queue.size >= this.maxQueue) return Promise.reject(new WaitEnded('full'));
    const t = new Ticket(client, deadline, signal);
    const done = this.park(t);
    this.queue.push(client, t);
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
    if (this.turn === t) this.turn = null;
    const done = this.park(t);
    this.queue.unshift(t.client, t);
    this.wait(t);
    this.wakeAt = retryAt;
    this.schedule();
    return done;
  }

  /** The ticket holding the turn picked a key: the next may go at once. Call `finished` when its call ends. */
  picked(t: Ticket): void {
    if (this.turn === t) this.turn = null;
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
    else this.queue.remove(t.client, t);
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

  private expire(t: Ticket, why: WaitEnd): void {
    if (!this.queue.remove(t.client, t)) return;
    t.waiting = false;
    this.unpark(t);
    t.reject(new WaitEnded(why));
    this.schedule();
  }

  /**
   * One timer for the room: the next turn when a key may be usable, or the soonest deadline of a
   * waiting request, whichever comes first. Wakes the next ticket when the turn is free, a key may
   * be usable and the slow start allows.
   */
  private schedule(): void {
    const now = this.clock.now();
    if (this.queue.size > 0 && this.turn === null && this.inflight < this.cap && this.wakeAt <= now) {
      const next = this.queue.shift()!;
      this.turn = next.item;
      next.item.waiting = false;
      this.unpark(next.item);
      next.item.resolve();
    }
    // Only the soonest deadlines: tickets no longer waiting are dropped, those due are turned away.
    for (let t = this.deadlines.peek(); t !== undefined && (!t.waiting || t.deadline <= now); t = this.deadlines.peek()) {
      this.deadlines.pop();
      t.inHeap = false;
      if (!t.waiting) continue;
      t.waiting = false;
      this.queue.remove(t.client, t);
      this.unpark(t);
      t.reject(new WaitEnded('deadline'));
    }
    let soonest = this.deadlines.peek()?.deadline ?? Infinity;
    if (this.queue.size === 0) {
      // The demand ended: so does the slow start.
      if (this.turn === null && this.inflight === 0) this.cap = Infinity;
      this.clearTimer();
      return;
    }
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
