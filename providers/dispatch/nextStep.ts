import type { RotationConfig } from '../../config';
import { backoffDelay } from './backoff';
import {
  AllKeysRateLimitedError,
  EdgeRateLimitedError,
  NoUsableKeysError,
  type OrcheError,
  RequestExceedsLimitError,
  UpstreamError,
  UpstreamRateLimitedError,
  UpstreamRejectedError,
  UpstreamTimeoutError,
} from '../errors';
import { blamesNoKey, NO_HINT_HOLD_MS, type Outcome } from '../limits/rateLimit';
import type { PickResult } from '../store/types';

/**
 * The dispatcher's decisions, as one pure function (docs/design.md#next-step): given what just happened (a pick
 * found no key, or a call ended with an outcome) and the request's allowance (attempts and deadlines),
 * what to do next. The dispatcher's loop only does the I/O each step names. Time is an argument; no clock here.
 */

/**
 * One request's allowance, its attempts and deadlines (not a key's rpm/rpd budget): `now`, `attempts`
 * and `retries` change as it goes, the rest is fixed at its start.
 */
export interface Allowance {
  now: number;
  /** Calls made so far, and the most the request may make (ORCHE_MAX_ATTEMPTS). */
  attempts: number;
  maxAttempts: number;
  /** Retry outcomes (5xx, timeout) before this one: the backoff doubles with them. */
  retries: number;
  /**
   * A wait for a recovery (or in the wait room) must end by here: ORCHE_MAX_WAIT_MS after the start,
   * and before the request's deadline (`waitUntil`).
   */
  waitUntil: number;
  /** The request's whole deadline (ORCHE_DEADLINE_MS after the start). */
  deadline: number;
  deadlineMs: number;
  /** One call's own timeout (ORCHE_REQUEST_TIMEOUT_MS), cut to what is left of the deadline. */
  requestTimeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Default cooldown, for the Retry-After of a request whose every call was rate-limited. */
  cooldownMs: number;
  /** [0, 1) for the backoff's jitter, injected like the clock. */
  random: () => number;
}

export type Situation =
  /** About to pick a key for the provider. */
  | { kind: 'start'; provider: string; configured: boolean; fallback: string | null }
  /** The pick found no usable key. */
  | { kind: 'no_key'; provider: string; requested: string; pick: Extract<PickResult, { keyId: null }>; fallback: string | null; last: Outcome | null }
  /** One call ended. `requested` is the provider the client asked for (fallbacks may differ). */
  | { kind: 'outcome'; provider: string; requested: string; outcome: Outcome; fallback: string | null };

/** When a wait must end: the wait limit, and strictly before the request's deadline. */
export function waitUntil(start: number, maxWaitMs: number, deadlineMs: number): number {
  return Math.min(start + maxWaitMs, start + deadlineMs - 1);
}

/** A request's allowance at its start, from the rotation settings (ORCHE_MAX_ATTEMPTS, ORCHE_MAX_WAIT_MS, …). */
export function startAllowance(start: number, r: RotationConfig, random: () => number): Allowance {
  return {
    now: start,
    attempts: 0,
    maxAttempts: r.maxAttempts,
    retries: 0,
    waitUntil: waitUntil(start, r.maxWaitMs, r.deadlineMs),
    deadline: start + r.deadlineMs,
    deadlineMs: r.deadlineMs,
    requestTimeoutMs: r.requestTimeoutMs,
    backoffBaseMs: r.backoffBaseMs,
    backoffMaxMs: r.backoffMaxMs,
    cooldownMs: r.cooldownMs,
    random,
  };
}

export type Step =
  /**
   * Pick (again) at once: the first pick, or after a cooldown or a disabled key. `timeoutMs`: the
   * call's timeout, ORCHE_REQUEST_TIMEOUT_MS or what is left of the request's deadline.
   */
  | { kind: 'pick'; timeoutMs: number }
  /** Return the call's value to the client. */
  | { kind: 'answer' }
  /** Count a retry, avoid the failed key (5xx, timeout), sleep, then pick again. */
  | { kind: 'back_off'; delayMs: number }
  /** Sleep until the soonest recovery, then pick again. */
  | { kind: 'wait'; delayMs: number }
  /** Go on with another provider. */
  | { kind: 'fall_back'; to: string; reason: string }
  | { kind: 'fail'; error: OrcheError };

export function nextStep(s: Situation, a: Allowance): Step {
  switch (s.kind) {
    case 'start':
      if (a.now >= a.deadline) return { kind: 'fail', error: new UpstreamTimeoutError(s.provider, a.attempts, `no answer within the request deadline of ${a.deadlineMs} ms`) };
      if (s.configured) return pickStep(a);
      if (s.fallback) return { kind: 'fall_back', to: s.fallback, reason: 'no_keys' };
      return { kind: 'fail', error: new NoUsableKeysError(s.provider, true) };
    case 'no_key':
      return noKey(s, a);
    case 'outcome':
      return afterOutcome(s, a);
  }
}

function pickStep(a: Allowance): Step {
  return { kind: 'pick', timeoutMs: Math.max(1, Math.min(a.requestTimeoutMs, a.deadline - a.now)) };
}

function noKey(s: Extract<Situation, { kind: 'no_key' }>, a: Allowance): Step {
  const { pick } = s;
  // An edge hold stops every provider on this host alike: a fallback would meet the same edge.
  if (s.fallback && pick.reason !== 'edge') return { kind: 'fall_back', to: s.fallback, reason: pick.reason };
  if (pick.retryAt === null) return { kind: 'fail', error: new NoUsableKeysError(s.provider, false) };
  const wait = Math.max(1, pick.retryAt - a.now);
  if (a.now + wait <= a.waitUntil) return { kind: 'wait', delayMs: wait };
  if (pick.reason === 'edge') return { kind: 'fail', error: new EdgeRateLimitedError(s.provider, wait) };
  if (pick.reason === 'congested') {
    const message = s.last && 'message' in s.last ? s.last.message : 'model congested upstream';
    return { kind: 'fail', error: new UpstreamRateLimitedError(s.provider, wait, message) };
  }
  return { kind: 'fail', error: new AllKeysRateLimitedError(s.provider, wait, pick.reason === 'budget' ? 'budgets spent' : 'cooling') };
}

function afterOutcome(s: Extract<Situation, { kind: 'outcome' }>, a: Allowance): Step {
  const o = s.outcome;
  if (o.kind === 'success') return { kind: 'answer' };
  if (o.kind === 'unservable') {
    // A 404 that says this model has no endpoint for the request (gone, or none supports its tools):
    // the fallback is another model, which may serve it. Without one, or with no attempt left, the 404 as is.
    if (o.reason === 'model_unavailable' && s.fallback && a.attempts < a.maxAttempts) return { kind: 'fall_back', to: s.fallback, reason: `fallback:${o.reason}` };
    return { kind: 'fail', error: new UpstreamRejectedError(s.provider, o.status, o.reason, o.message) };
  }
  if (o.kind === 'client_error') {
    // Too large for a limit of the key or the account: the client's to fix; nothing was charged to the key.
    if (o.limit) return { kind: 'fail', error: new RequestExceedsLimitError(s.provider, o.status, o.limit, o.message) };
    return { kind: 'fail', error: new UpstreamRejectedError(s.provider, o.status, o.reason, o.message) };
  }
  if (a.attempts >= a.maxAttempts) return { kind: 'fail', error: exhausted(s, a) };
  switch (o.kind) {
    case 'cool':
    case 'disable':
      return pickStep(a); // the next usable key at once, no sleep
    case 'edge':
      return pickStep(a); // the next pick sees the host hold: it waits for it or fails with its Retry-After
    case 'congested':
      // Otherwise the next pick sees the congestion and waits or fails with its hint.
      return s.fallback ? { kind: 'fall_back', to: s.fallback, reason: `fallback:${o.reason}` } : pickStep(a);
    case 'retry': {
      const delay = backoffDelay(a.retries + 1, a.backoffBaseMs, a.backoffMaxMs, a.random);
      return { kind: 'back_off', delayMs: Math.min(delay, Math.max(0, a.deadline - a.now)) };
    }
  }
}

/** Every attempt spent: the error says what the last one was. */
function exhausted(s: Extract<Situation, { kind: 'outcome' }>, a: Allowance): OrcheError {
  const last = s.outcome;
  switch (last.kind) {
    case 'retry':
      return last.reason === 'timeout' ? new UpstreamTimeoutError(s.provider, a.attempts, last.message) : new UpstreamError(s.provider, last.status, last.message, a.attempts);
    case 'cool': {
      const wait = Math.max(1000, (last.until ?? a.now + a.cooldownMs) - a.now);
      return new AllKeysRateLimitedError(s.requested, wait, `${a.attempts} attempts all rate-limited`);
    }
    case 'congested':
      return new UpstreamRateLimitedError(s.provider, Math.max(1000, (last.until ?? a.now + NO_HINT_HOLD_MS) - a.now), last.message);
    case 'edge':
      return new EdgeRateLimitedError(s.provider, Math.max(1000, (last.until ?? a.now + NO_HINT_HOLD_MS) - a.now));
    default:
      return new UpstreamError(s.provider, last.status, 'message' in last ? last.message : 'upstream failure', a.attempts);
  }
}

/**
 * What the key's state learns from a call of a request that carries a client's routing choice
 * (`models`, `route`, `plugins`, `provider`, with ORCHE_CLIENT_ROUTING=allow): nothing shared (docs/design.md#client-routing).
 * Its answers tell about the providers or models the client chose, not about our keys, accounts or
 * this model for others: a failure is the request's own (no key cooled or disabled, no model held
 * congested, no host held), and no rate header or account id is learned from it.
 */
export function sharedOutcome(outcome: Outcome, isolated: boolean): Outcome {
  if (!isolated) return outcome;
  if (outcome.kind === 'success') return { kind: 'success', status: outcome.status, body: outcome.body };
  return { kind: 'client_error', status: outcome.status, reason: 'client_routed', message: 'message' in outcome ? outcome.message : '', body: undefined };
}

const CLIENT_GONE: Outcome = { kind: 'client_error', status: 499, reason: 'client_gone', message: 'client went away', body: undefined };

/**
 * What the key's state learns from a call the client left during. An answer that says something about
 * the key (a success, a 429, a 401, congestion, an edge hold) is recorded as it is, even if it came as
 * the client left; a failure (most likely the abort itself), a client error or an unservable answer is the
 * client's going.
 */
export function reportedOutcome(outcome: Outcome, clientGone: boolean): Outcome {
  if (!clientGone) return outcome;
  return outcome.kind === 'retry' || blamesNoKey(outcome) ? CLIENT_GONE : outcome;
}
