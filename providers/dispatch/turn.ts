import { lessonOf } from '../limits/learnedLimit';
import type { Outcome } from '../limits/rateLimit';

/**
 * One request's turn in its provider's wait room (docs/design.md#the-outcome-table), and what its calls tell the room's
 * slow start, as one pure transition: (turn, event) → (turn, actions). The dispatcher's loop does
 * what each action names on the room; `H`, the held turn (a ticket and its room), is opaque here.
 */

/** How a call the room let through ended, for the room's slow start (waitRoom.ts `finished`). */
export type Feedback = 'success' | 'rate_limited_unknown' | 'other';

export interface Turn<H> {
  /** The room's turn this request holds: its turn came (or it is in line) and it has not picked yet. */
  held: H | null;
  /** The turn that let the current call through: its room hears how the call ended. */
  through: H | null;
  /** This request's own last call (not one the room let through) met a 429 that taught no limit. */
  slowStart: boolean;
  /** The room at its provider has seen this request arrive (admitted or queued): it is no newcomer there. */
  arrived: boolean;
}

export const NO_TURN: Turn<never> = { held: null, through: null, slowStart: false, arrived: false };

export type TurnEvent<H> =
  /** nextStep says pick. `first`: the request made no call yet. `busy`: the room's `busy`. */
  | { kind: 'pick_due'; first: boolean; busy: boolean }
  /** The room's line took the request in, and its turn came. */
  | { kind: 'joined'; held: H }
  /** The pick found a key. */
  | { kind: 'picked' }
  /** The call ended: its outcome as the shared state sees it (sharedOutcome), at `at`; `trial`: a recovering key's trial call. */
  | { kind: 'called'; outcome: Outcome; at: number; trial: boolean }
  /** nextStep says wait: a key may be usable at `at`. */
  | { kind: 'wait'; at: number }
  /** The wait ended without a turn (line full, deadline, client gone, hopeless). */
  | { kind: 'wait_ended' }
  /** nextStep says fall back to another provider. */
  | { kind: 'fall_back' }
  /** The request is over: answered, failed or left. */
  | { kind: 'end' };

/** What to do on the room, in order. At most one of them waits (`join`, `retry`, `use`). */
export type TurnAction<H> =
  /**
   * A new request found the room not busy: the room counts it in its arrival rate and, once the
   * provider's budget is known, asks the pacing whether it may pick at once; else it joins the line.
   */
  | { kind: 'admit' }
  /** Queue in the room's line (`retryAt`: when a key may be usable; none: as soon as the turn comes); then `joined`. */
  | { kind: 'join'; retryAt?: number }
  /** The held turn found no key: back first in its line, the room waits until `retryAt`. */
  | { kind: 'retry'; held: H; retryAt: number }
  /** The held turn is used: once the served count is in (the next release sees it), the next in line may pick. */
  | { kind: 'use'; held: H }
  /** The call the turn let through ended. */
  | { kind: 'finished'; through: H; feedback: Feedback }
  /** A recovering key is open again: those waiting need not wait longer. */
  | { kind: 'kick' }
  /** The room slow-starts, as if it had let through the call that met the 429. */
  | { kind: 'slow_start' }
  /** Give up the held turn or place in line. */
  | { kind: 'leave'; held: H };

export interface TurnStep<H> {
  turn: Turn<H>;
  actions: TurnAction<H>[];
}

/**
 * What a call's outcome tells the slow start: a 429 that taught no limit restarts it, a success widens
 * it. Other cooling answers (a 403 key cap, a 402 in-flight budget) say nothing about the rate; nor
 * does an answer to a client's own routing choice (sharedOutcome makes it a client_error).
 */
export function feedbackOf(outcome: Outcome, at: number): Feedback {
  if (outcome.kind === 'success') return 'success';
  return outcome.kind === 'cool' && outcome.status === 429 && lessonOf(outcome, at) === undefined ? 'rate_limited_unknown' : 'other';
}

export function turnStep<H>(turn: Turn<H>, e: TurnEvent<H>): TurnStep<H> {
  switch (e.kind) {
    case 'pick_due':
      if (turn.held !== null || !e.first || turn.arrived) return { turn, actions: [] };
      // A new request queues behind those already waiting for this provider, least served first.
      return { turn: { ...turn, arrived: true }, actions: [e.busy ? { kind: 'join' } : { kind: 'admit' }] };
    case 'joined':
      return { turn: { ...turn, held: e.held }, actions: [] };
    case 'picked':
      if (turn.held === null) return { turn, actions: [] };
      return { turn: { ...turn, held: null, through: turn.held }, actions: [{ kind: 'use', held: turn.held }] };
    case 'called': {
      const feedback = feedbackOf(e.outcome, e.at);
      const actions: TurnAction<H>[] = turn.through ? [{ kind: 'finished', through: turn.through, feedback }] : [];
      if (feedback === 'success' && e.trial) actions.push({ kind: 'kick' });
      return { turn: { ...turn, through: null, slowStart: turn.through === null && feedback === 'rate_limited_unknown' }, actions };
    }
    case 'wait': {
      // If it waits because of that 429, those behind it go 1, 2, 4, … at a time after the reset, not all at once.
      const actions: TurnAction<H>[] = turn.slowStart ? [{ kind: 'slow_start' }] : [];
      actions.push(turn.held ? { kind: 'retry', held: turn.held, retryAt: e.at } : { kind: 'join', retryAt: e.at });
      return { turn: { ...turn, slowStart: false }, actions };
    }
    case 'wait_ended':
      return { turn: { ...turn, held: null }, actions: [] };
    case 'fall_back':
      return { turn: { ...turn, held: null, slowStart: false, arrived: false }, actions: turn.held ? [{ kind: 'leave', held: turn.held }] : [] };
    case 'end': {
      const actions: TurnAction<H>[] = turn.held ? [{ kind: 'leave', held: turn.held }] : [];
      if (turn.through) actions.push({ kind: 'finished', through: turn.through, feedback: 'other' });
      return { turn: NO_TURN, actions };
    }
  }
}
