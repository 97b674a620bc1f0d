/**
 * A request's turn in the wait room and the slow-start feedback of its calls, as a table:
 * (turn, event) → (turn, actions). Pure: the time of a call's end is an argument; the held turn is
 * a plain name here.
 */
import type { Outcome } from '../../../providers/limits/rateLimit';
import { feedbackOf, NO_TURN, type Turn, type TurnEvent, type TurnStep, turnStep } from '../../../providers/dispatch/turn';
import { outcome, T0 } from '../../helpers/poolFixtures';

type H = string;
const turn = (over: Partial<Turn<H>> = {}): Turn<H> => ({ ...NO_TURN, ...over });
const held = turn({ held: 't1' });
const through = turn({ through: 't1' });

/** A 429 that names its limit and reset: it teaches a limit (learnedLimit.ts lessonOf). */
const taught429: Outcome = { ...outcome.cool('key', T0 + 30_000), rate: { limit: 20, remaining: 0, resetAt: T0 + 30_000 } };
/** A 429 with the reset already past at the call's end: it teaches nothing. */
const stale429: Outcome = { ...outcome.cool('key', T0 - 1), rate: { limit: 20, remaining: 0, resetAt: T0 - 1 } };
const called = (o: Outcome, trial = false): TurnEvent<H> => ({ kind: 'called', outcome: o, at: T0, trial });

describe('turnStep', () => {
  test.each<[string, Turn<H>, TurnEvent<H>, TurnStep<H>]>([
    // A pick is due
    ['first pick, the room not busy → the room admits it (at once, or into the line when paced)', turn(), { kind: 'pick_due', first: true, busy: false }, { turn: turn({ arrived: true }), actions: [{ kind: 'admit' }] }],
    ['first pick, the room busy → queue behind those waiting', turn(), { kind: 'pick_due', first: true, busy: true }, { turn: turn({ arrived: true }), actions: [{ kind: 'join' }] }],
    ['first pick again after the room admitted it → pick at once, not admitted twice', turn({ arrived: true }), { kind: 'pick_due', first: true, busy: false }, { turn: turn({ arrived: true }), actions: [] }],
    ['a later pick, the room busy → pick at once (the request is no newcomer)', turn(), { kind: 'pick_due', first: false, busy: true }, { turn: turn(), actions: [] }],
    ['first pick with the turn held (its turn came) → pick at once', held, { kind: 'pick_due', first: true, busy: true }, { turn: held, actions: [] }],
    ['the turn came → held', turn(), { kind: 'joined', held: 't1' }, { turn: held, actions: [] }],

    // The pick found a key
    ['picked with the turn held → the turn is used, the room hears how the call ends', held, { kind: 'picked' }, { turn: through, actions: [{ kind: 'use', held: 't1' }] }],
    ['picked without a turn → nothing for the room', turn(), { kind: 'picked' }, { turn: turn(), actions: [] }],

    // The call ended: the slow-start feedback
    ['a call let through succeeded → the room widens its slow start', through, called(outcome.success()), { turn: turn(), actions: [{ kind: 'finished', through: 't1', feedback: 'success' }] }],
    ['a call let through met a 429 that taught no limit → the room restarts its slow start', through, called(outcome.cool('key', T0 + 5_000)), { turn: turn(), actions: [{ kind: 'finished', through: 't1', feedback: 'rate_limited_unknown' }] }],
    ['a call let through met a 429 that taught a limit → other', through, called(taught429), { turn: turn(), actions: [{ kind: 'finished', through: 't1', feedback: 'other' }] }],
    ['a call let through failed (5xx) → other', through, called(outcome.retry(502)), { turn: turn(), actions: [{ kind: 'finished', through: 't1', feedback: 'other' }] }],
    ["the request's own call met a 429 that taught no limit → it slow-starts the room if it waits", turn(), called(outcome.cool('key', T0 + 5_000)), { turn: turn({ slowStart: true }), actions: [] }],
    ["the request's own call met a 429 whose reset had passed → no lesson, slow start", turn(), called(stale429), { turn: turn({ slowStart: true }), actions: [] }],
    ["the request's own call met a 429 that taught a limit → no slow start", turn(), called(taught429), { turn: turn(), actions: [] }],
    ["a 403 key cap (not a 429) → no slow start", turn(), called({ kind: 'cool', status: 403, scope: 'key', until: T0 + 5_000, reason: 'key_cap', message: 'cap' }), { turn: turn(), actions: [] }],
    ['an answer to a routing choice of the client (sharedOutcome: a client_error) → no slow start', turn(), called(outcome.clientError(429, 'client_routed')), { turn: turn(), actions: [] }],
    ["a later success clears the request's slow start", turn({ slowStart: true }), called(outcome.success()), { turn: turn(), actions: [] }],
    ["a successful trial call opened a recovering key → those waiting need not wait", turn(), called(outcome.success(), true), { turn: turn(), actions: [{ kind: 'kick' }] }],
    ['a trial call let through succeeded → the room hears it, then is kicked', through, called(outcome.success(), true), { turn: turn(), actions: [{ kind: 'finished', through: 't1', feedback: 'success' }, { kind: 'kick' }] }],
    ['a failed trial call → no kick', turn(), called(outcome.retry(502), true), { turn: turn(), actions: [] }],

    // nextStep says wait
    ['wait, no turn held → join the line until the recovery', turn(), { kind: 'wait', at: T0 + 2_000 }, { turn: turn(), actions: [{ kind: 'join', retryAt: T0 + 2_000 }] }],
    ['wait, the turn held → first in its line again, the room waits until the recovery', held, { kind: 'wait', at: T0 + 2_000 }, { turn: held, actions: [{ kind: 'retry', held: 't1', retryAt: T0 + 2_000 }] }],
    ['wait after its own unknown 429 → the room slow-starts first, once', turn({ slowStart: true }), { kind: 'wait', at: T0 + 2_000 }, { turn: turn(), actions: [{ kind: 'slow_start' }, { kind: 'join', retryAt: T0 + 2_000 }] }],
    ['the wait ended without a turn → nothing held', held, { kind: 'wait_ended' }, { turn: turn(), actions: [] }],

    // Fall back, end
    ['fall back with the turn held → leave the room', turn({ held: 't1', slowStart: true }), { kind: 'fall_back' }, { turn: turn(), actions: [{ kind: 'leave', held: 't1' }] }],
    ['fall back, nothing held → the 429 of the provider it left slow-starts no other room', turn({ slowStart: true }), { kind: 'fall_back' }, { turn: turn(), actions: [] }],
    ['the request ends holding a turn → leave', held, { kind: 'end' }, { turn: turn(), actions: [{ kind: 'leave', held: 't1' }] }],
    ['the request ends during a call let through (an error, the client gone) → the room hears it ended', through, { kind: 'end' }, { turn: turn(), actions: [{ kind: 'finished', through: 't1', feedback: 'other' }] }],
    ['the request ends with nothing in the room → nothing to do', turn({ slowStart: true }), { kind: 'end' }, { turn: turn(), actions: [] }],
  ])('%s', (_name, before, event, expected) => {
    expect(turnStep(before, event)).toEqual(expected);
  });

  test('a whole wait: queue, turn, pick, call; then the next request may go and the room hears the success', () => {
    let t: Turn<H> = NO_TURN;
    const actions: unknown[] = [];
    for (const e of [{ kind: 'pick_due', first: true, busy: true }, { kind: 'joined', held: 't1' }, { kind: 'pick_due', first: true, busy: true }, { kind: 'picked' }, called(outcome.success()), { kind: 'end' }] as TurnEvent<H>[]) {
      const next = turnStep(t, e);
      t = next.turn;
      actions.push(...next.actions);
    }
    expect(actions).toEqual([{ kind: 'join' }, { kind: 'use', held: 't1' }, { kind: 'finished', through: 't1', feedback: 'success' }]);
    expect(t).toEqual(NO_TURN);
  });
});

describe('feedbackOf: what a call tells the slow start', () => {
  test.each<[string, Outcome, number, string]>([
    ['success', outcome.success(), T0, 'success'],
    ['429, no limit named', outcome.cool('key', T0 + 5_000), T0, 'rate_limited_unknown'],
    ['429 naming its limit and reset', taught429, T0, 'other'],
    ['the same 429 read after its reset', taught429, T0 + 30_000, 'rate_limited_unknown'],
    ['congested upstream', outcome.congested(T0 + 5_000), T0, 'other'],
    ['401', outcome.disable(), T0, 'other'],
    ['client error', outcome.clientError(400), T0, 'other'],
    ['unservable', outcome.unservable(), T0, 'other'],
  ])('%s → %s', (_name, o, at, expected) => {
    expect(feedbackOf(o, at)).toBe(expected);
  });
});
