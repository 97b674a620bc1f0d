/**
 * Fair, paced release (docs/design.md#pacing-and-fairness): when more requests wait for a provider than its keys' remaining
 * budget in the window, the budget is released across the rest of the window — one release every
 * remaining-time / remaining-budget, after a small burst — instead of all at the window's start,
 * so that a client whose requests arrive spread out still finds budget when they come. Pure
 * decisions, time as an argument; the wait room (waitRoom.ts) does the timers, the stores keep the
 * state shared (providers/store/fairState.ts).
 */
import type { KeyInspection } from '../store/types';

/** Releases that go at once at a window's start, before the pacing spreads the rest. */
export const PACE_BURST = 2;

/**
 * A waiting request this close to its deadline may take a release ahead of the schedule (a last
 * call), when every request waiting fits the budget: room for the release, the pick and the call's start.
 */
export const LAST_CALL_MS = 50;

/** The pacing of one provider in one window, as the store keeps it (shared across instances on Redis). */
export interface PaceState {
  /** The end of the window this state counts in; a state of another window counts as none. */
  windowEnd: number;
  /** Releases decided in this window. */
  released: number;
  /** The next paced release may go from here. */
  nextAt: number;
}

export interface PaceInput {
  now: number;
  /** Calls the keys' limits still allow in this window, and when the window ends. */
  remaining: number;
  windowEnd: number;
  /** Requests waiting for the provider (on every instance). */
  waiting: number;
  /** New requests per millisecond lately (on every instance): those the held-back budget is kept for. */
  arrivalRate: number;
  burst: number;
  /** The soonest deadline of a request waiting here (none: no last call). */
  dueBy?: number;
}

/**
 * `paced`: the provider is contended; new requests should queue for the pacing, not pick at once.
 * `spare`: calls of the budget that neither the requests waiting nor those expected in the rest of
 * the window will need, after this one (0 when contended).
 */
export type PaceDecision = { go: true; paced: boolean; state: PaceState; spare: number; lastCall?: true } | { go: false; at: number; paced: boolean };

/**
 * May the next waiting request go now? Contention: more requests waiting and expected in the rest
 * of the window (at the recent arrival rate) than the budget allows. Without it, always. With it,
 * what no expected arrival will need goes at once (so that waiting requests do not reach their
 * deadlines while it lies unused, as at the end of a burst of demand); the rest is held for them
 * and released across the window: the first `burst` of the window at once, then one every
 * remaining-time / remaining-budget. While every request waiting fits the budget, one about to
 * reach its deadline before the next release goes at once (a last call, `dueBy`): the budget held
 * back is for arrivals that may not come, and the waiting request is here. A spent budget waits
 * for the window's end.
 */
export function paceRelease(state: PaceState | undefined, i: PaceInput): PaceDecision {
  const s = state !== undefined && state.windowEnd === i.windowEnd ? state : { windowEnd: i.windowEnd, released: 0, nextAt: 0 };
  if (i.remaining <= 0) return { go: false, at: i.windowEnd, paced: i.waiting > 0 };
  const expected = Math.ceil(i.arrivalRate * Math.max(0, i.windowEnd - i.now));
  const contended = i.waiting + expected > i.remaining;
  const surplus = i.remaining - Math.min(i.remaining, expected) >= 1;
  const paced = contended && !surplus;
  let lastCall = false;
  if (paced && s.released >= i.burst && i.now < s.nextAt) {
    // Every request waiting fits the budget: what the schedule holds back is only for arrivals
    // expected later, and a request that would expire before the next release takes one now.
    const due = i.dueBy ?? Infinity;
    if (i.waiting > i.remaining || due >= s.nextAt) return { go: false, at: s.nextAt, paced };
    if (due - i.now > LAST_CALL_MS) return { go: false, at: due - LAST_CALL_MS, paced };
    lastCall = true;
  }
  const spare = contended ? 0 : i.remaining - 1 - i.waiting - expected;
  const next = { windowEnd: i.windowEnd, released: s.released + 1, nextAt: i.now + (i.windowEnd - i.now) / i.remaining };
  return lastCall ? { go: true, paced: true, spare: 0, lastCall: true, state: next } : { go: true, paced: contended, spare: Math.max(0, spare), state: next };
}

/** What the keys allow of a provider now: the rest of this window, a whole window, and the window. */
export interface BudgetLeft {
  remaining: number;
  windowEnd: number;
  /** Calls a whole window allows the keys usable now. */
  capacity: number;
  windowMs: number;
  /** Usable keys with room of their own (keys of one account count once): the burst covers each, so that none idles after its reset. */
  sources: number;
}

/** A window's burst: PACE_BURST, or one release per budget source when there are more. */
export function burstOf(b: BudgetLeft): number {
  return Math.max(PACE_BURST, b.sources);
}

/**
 * The provider's budget from its keys' learned limits (one inspection of every key). Keys of one
 * account share its gates, so each gate's room is taken once: each usable key adds what the
 * tightest of its gates has left, and takes it from all of them. Undefined when no pacing applies:
 * a usable key without a learned limit (the budget is unknown), or no usable key at all (the picks
 * say when one recovers).
 */
export function budgetLeft(keys: readonly KeyInspection[], now: number): BudgetLeft | undefined {
  const left = new Map<string, number>();
  const whole = new Map<string, number>();
  let remaining = 0;
  let capacity = 0;
  let windowEnd = Infinity;
  let windowMs = Infinity;
  let usable = 0;
  let sources = 0;
  for (const k of keys) {
    if (k.disabled !== null || k.cooldownUntil > now) continue;
    usable++;
    if (k.learned.length === 0) return undefined;
    let mine = Infinity;
    let mineWhole = Infinity;
    for (const l of k.learned) {
      const name = `${l.gate}|${l.windowMs}`;
      if (!left.has(name)) left.set(name, Math.max(0, l.limit - l.used));
      if (!whole.has(name)) whole.set(name, l.limit);
      mine = Math.min(mine, left.get(name)!);
      mineWhole = Math.min(mineWhole, whole.get(name)!);
      windowEnd = Math.min(windowEnd, (Math.floor(now / l.windowMs) + 1) * l.windowMs);
      windowMs = Math.min(windowMs, l.windowMs);
    }
    for (const l of k.learned) {
      const name = `${l.gate}|${l.windowMs}`;
      left.set(name, left.get(name)! - mine);
      whole.set(name, whole.get(name)! - mineWhole);
    }
    remaining += mine;
    capacity += mineWhole;
    if (mine > 0) sources++;
  }
  if (usable === 0) return undefined;
  return { remaining, windowEnd, capacity, windowMs, sources };
}

/**
 * The soonest a request can be released when `ahead` requests of its own line (same client and
 * end user, arrived before it) must go first: a lower bound, whatever the others do — this
 * window's remaining budget, then at most `capacity` per later window. Later than the request's
 * deadline means it cannot make it, and it can be told so at once (docs/design.md#pacing-and-fairness;).
 */
export function soonestRelease(b: BudgetLeft, ahead: number, now: number): number {
  if (ahead < b.remaining) return now;
  if (b.capacity <= 0) return Infinity;
  return b.windowEnd + Math.floor((ahead - b.remaining) / b.capacity) * b.windowMs;
}
