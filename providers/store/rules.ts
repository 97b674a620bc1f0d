/**
 * The state rules, written once (docs/design.md#the-state-rules-table): what each event does to a key's state, and how long each
 * piece of state lives. MemoryStore, SnapshotStore and the Redis scripts use these constants, and
 * tests/helpers/storeContract.ts runs one test per row against all three stores with an injected clock.
 * README.md's State section shows the same table.
 *
 * Every expiry is logical: a store compares the stored time with the caller's `now`, so an injected
 * clock and Redis agree. Redis's own key TTLs only collect the garbage a little after that.
 */

import { DAY_MS as DAY, HOUR_MS as HOUR, MINUTE_MS as MINUTE } from '../limits/windows';

export const EXPIRY = {
  /**
   * The doubling count of a key's 429s is forgotten a day after its last 429: a key that misbehaved
   * yesterday starts again at the base cooldown.
   */
  strikesMs: DAY,
  /**
   * A gate whose deadline passed stays "recovering" (one trial call at a time) until a trial
   * succeeds, but at most this long after its deadline: a key nobody asked for in an hour simply
   * serves again (its next call is an ordinary one; a 429 cools it again).
   */
  recoveringMs: HOUR,
  /**
   * A disabled flag (401, 402, key limit, admin) lapses 30 days after it was set, and so does the
   * record of a reactivation. The periodic /key check disables a still-bad key again at once; an
   * admin who wants a key gone for good removes it from the configuration.
   */
  disabledMs: 30 * DAY,
  /** A learned account (user_id) lasts 30 days after it was last reported by an answer. */
  accountMs: 30 * DAY,
  /** The round-robin position: after a week without picks the rotation restarts at the first key. */
  positionMs: 7 * DAY,
  /** Budget counters count within their window (the minute, the UTC day); Redis drops them a minute later. */
  counterMarginMs: MINUTE,
  /**
   * Redis remembers each pick's id this long, so that a pick whose script ran although its reply timed
   * out (and that the local state then counted too) is not added again by the merge after the outage.
   */
  pickIdMs: 5 * MINUTE,
  /** Redis keeps a congestion gate this long after its deadline (inspection only; it holds nothing). */
  congestionMarginMs: MINUTE,
  /** A learned limit (providers/limits/learnedLimit.ts) lasts a day after it was learned; a new 429 relearns it. */
  learnedMs: DAY,
} as const;

/** The reason of a gate that a full window of a learned limit cooled (rule learned-full). */
export const LEARNED_FULL = 'learned_limit';

/** How often an answer's user_id is reported to the store again, so that the account does not lapse. */
export const ACCOUNT_REFRESH_MS = DAY;

export interface Rule {
  /** A stable name: the contract test of the row carries it. */
  id: string;
  state: string;
  event: string;
  next: string;
  expiry: string;
}

/** The table itself, as README.md shows it. */
export const RULES: readonly Rule[] = [
  { id: 'cool', state: 'active', event: '429 on a key, account or account+model scope', next: 'cooling until the reset (else base × 2^(strikes−1), capped); strikes +1', expiry: 'gate: deadline + recovering' },
  { id: 'cool-later-wins', state: 'cooling', event: 'another 429', next: 'the later deadline wins', expiry: '—' },
  { id: 'recover', state: 'cooling', event: 'the deadline passes', next: 'recovering: one trial call at a time (its hold lasts the request timeout at most)', expiry: `${EXPIRY.recoveringMs / HOUR} h after the deadline → active` },
  { id: 'trial-success', state: 'recovering', event: 'the trial succeeds', next: 'active; strikes 0', expiry: '—' },
  { id: 'trial-ends', state: 'recovering', event: 'the trial ends otherwise (5xx, timeout, 4xx, 401, 429 on another gate, client gone)', next: 'its hold ends at once; the next request may try (a 429 cools again)', expiry: '—' },
  { id: 'recovering-expires', state: 'recovering', event: `${EXPIRY.recoveringMs / HOUR} h past the deadline with no verdict`, next: 'active', expiry: '—' },
  { id: 'strikes-expire', state: 'strikes > 0', event: `no 429 for ${EXPIRY.strikesMs / DAY} day`, next: 'strikes 0 (doubling restarts at the base)', expiry: `${EXPIRY.strikesMs / DAY} day after the last 429` },
  { id: 'disable', state: 'any', event: 'a 401 that GET /key confirms, a 402 for the account\'s balance, total key limit, admin disable', next: 'disabled (never picked)', expiry: `${EXPIRY.disabledMs / DAY} days after it was set` },
  { id: 'reactivate', state: 'disabled', event: 'admin reactivation (or, for key_limit, a /key check that shows the key\'s own limit has room)', next: "active; the key's own gate and strikes cleared", expiry: 'the later admin action wins' },
  { id: 'congest', state: 'model', event: 'upstream congestion', next: 'no key of the model until the deadline (the later wins)', expiry: 'the deadline' },
  { id: 'edge', state: 'host', event: 'an edge 429 (HTML page, error code 1015)', next: 'no key of any provider until the deadline (the later wins)', expiry: 'the deadline' },
  { id: 'count', state: 'budget counters', event: 'each pick', next: '+1 in the minute and the UTC day', expiry: 'the end of the window' },
  { id: 'learn-account', state: 'account', event: 'an answer reports user_id', next: "the key joins that account's gates and budgets", expiry: `${EXPIRY.accountMs / DAY} days after last reported` },
  { id: 'learn-limit', state: 'scope (key, account, account+model)', event: "a 429 with X-RateLimit-Limit and a reset, or GET /key's free-model day", next: 'N calls per window (what the reset implies); a 429 in a later window lengthens the window', expiry: `${EXPIRY.learnedMs / DAY} day after it was learned; a new 429 relearns` },
  { id: 'learned-anchor', state: 'learned limit', event: 'a lesson with its reset', next: 'its windows run from that reset (reset + k × window), on whole multiples or not: the scope is never held past the reset the upstream sent', expiry: 'until the next lesson re-anchors them' },
  { id: 'learned-seed', state: 'learned limit', event: "GET /key's free_model_daily_requests.used", next: "the day's count is at least `used` (the upstream's own count)", expiry: 'the end of the UTC day' },
  { id: 'learned-count', state: 'learned limit', event: 'each pick', next: '+1 in its window; at N the scope is skipped (budget) until the window ends', expiry: 'the end of the window' },
  { id: 'learned-full', state: 'learned limit', event: 'a pick (or a lesson\'s used) fills its window', next: "the scope's gate cools until the window ends (reason learned_limit); then one trial call goes first, as after any cooldown: the window's end is orche's reckoning, and a 429 to the trial re-anchors it", expiry: 'gate: deadline + recovering' },
  { id: 'learned-refund', state: 'learned limit', event: 'the upstream refused the call itself (its own 429 or cap, 401/402, an edge 429); never a call it admitted (5xx, a provider\'s 429, timeout)', next: '−1 in the window it was picked in', expiry: '—' },
  { id: 'position', state: 'rotation position', event: 'each round-robin pick', next: 'the next key', expiry: `${EXPIRY.positionMs / DAY} days without picks → the first key` },
];
