import type { LearnedLimit } from '../limits/learnedLimit';
import type { CoolScope } from '../limits/rateLimit';
import type { FairState } from './fairState';

/** One key as a pick sees it. `account` is the configured account; the store resolves learned aliases. */
export interface Candidate {
  keyId: string;
  account: string;
}

/** Everything a store needs to choose a key atomically, built once per provider and reused. */
export interface PickPlan {
  /** Lower-case provider ID; the rotation position is kept per provider. */
  provider: string;
  model: string;
  /** `:free` model: account free-tier cooldowns and budgets apply. */
  free: boolean;
  /** Non-reserve keys in configured order, then reserve keys. */
  candidates: readonly Candidate[];
  /** round-robin: how many leading candidates rotate (the non-reserve ones); failover: 0. */
  rotating: number;
  /** How many trailing candidates are reserve keys: they serve only when no other key is usable. */
  reserves: number;
  keyRpm?: number;
  keyRpd?: number;
  accountRpm?: number;
  accountRpd?: number;
  /** How long a recovering key's trial call may hold its gates before another request may try. */
  trialTtlMs: number;
}

export type PickResult =
  | {
      keyId: string;
      index: number;
      trial: boolean;
      /**
       * Set when the pick counted the call against a learned limit: only then may a call upstream did
       * not serve be refunded (`refund`), and only then is that round trip worth making.
       */
      learned?: true;
    }
  | {
      keyId: null;
      /** The soonest time a key may be usable again; null when every key is disabled. */
      retryAt: number | null;
      reason: 'cooling' | 'budget' | 'congested' | 'disabled' | 'edge';
    };

export interface CoolRequest {
  keyId: string;
  account: string;
  model: string;
  scope: CoolScope;
  /** Reset time from the answer; undefined: the default cooldown, doubling with the key's strikes. */
  until?: number;
  reason: string;
  baseMs: number;
  maxMs: number;
  /** Counts as a 429 of the key for the doubling (default true); a cooldown orche infers does not. */
  strike?: boolean;
}

/** A limit a 429 (or GET /key) taught for one scope: so many calls per window (docs/design.md#learned-limits). */
export interface LearnRequest {
  keyId: string;
  account: string;
  model: string;
  scope: CoolScope;
  limit: number;
  /** The window the answer implies (`windowFromReset`), or the one GET /key states; whole ms, ≥ 1 s. */
  windowMs: number;
  /** The reset the answer carried: the limit's windows are anchored there (`windowStart`). */
  resetAt: number;
  /**
   * The upstream's own count in the current window, where it told one (GET /key's
   * free_model_daily_requests.used): orche's count of that window starts there (never lower).
   */
  used?: number;
  /** '429' or 'key_probe'. */
  source: string;
  /**
   * A 429's window is a guess: the store may lengthen it (`relearnedWindow`). A window GET /key states
   * is the real one and replaces the learned one as it is (else each periodic check would lengthen it).
   */
  lengthen?: boolean;
}

/** A learned limit as the key-status view shows it: the gate it holds and how full its window is. */
export interface LearnedView extends LearnedLimit {
  gate: string;
  /** Calls counted in the current window. */
  used: number;
}

/** What a key-state view needs of one key, read in one call per provider. */
export interface KeyView {
  keyId: string;
  account: string;
  model: string;
  free: boolean;
}

export interface KeyInspection {
  disabled: string | null;
  /** The latest deadline of the gates that hold this key (0 when none). */
  cooldownUntil: number;
  cooldownReason: string | null;
  /** The account in force (learned from `user_id`, or configured). */
  account: string;
  /** True when the key came back from cooling and waits for a trial call to succeed. */
  recovering: boolean;
  minuteCount: number;
  dayCount: number;
  /** Live learned limits of the key's gates. */
  learned: LearnedView[];
}

/**
 * State kept by someone else (the key pool's per-key counters) that a persistent store saves and
 * restores with its own. Plain JSON data only.
 */
export interface StateSection {
  save(): unknown;
  /** Called once, when the section is attached, if the store holds saved data for it. */
  restore(data: unknown): void;
}

export interface StoreHealth {
  kind: 'memory' | 'file' | 'redis';
  ok: boolean;
  detail?: string;
}

/**
 * Shared rotation state: cooldown gates, disabled keys, strikes, budgets, positions, learned accounts.
 * Every operation is atomic on its own; `pick` chooses and counts in one step.
 */
export interface StateStore {
  readonly kind: StoreHealth['kind'];
  /** What fair, paced release shares: pacing and served counts (fairState.ts, docs/design.md#pacing-and-fairness). */
  readonly fair: FairState;
  /**
   * Chooses and counts one key. Keys in `avoid` (they failed this request) are taken only when no
   * other non-reserve key is usable; they still count as usable for the reserve rule, so a reserve
   * serves only when every non-reserve key, avoided or not, is unusable (docs/design.md#picking-a-key).
   */
  pick(plan: PickPlan, now: number, avoid?: readonly string[]): Promise<PickResult>;
  /**
   * The same decision, made at once, by a store whose state is in this process (memory, snapshot);
   * a store that must ask elsewhere (Redis) has none. No promise and no turn of the microtask queue
   * stand between a request and its upstream call (issue 21).
   */
  pickSync?(plan: PickPlan, now: number, avoid?: readonly string[]): PickResult;
  /** Cools the gate the scope names; the later deadline wins. Returns the deadline in force. */
  cool(req: CoolRequest, now: number): Promise<number>;
  /** Marks a model congested upstream: no key is at fault. */
  congest(model: string, until: number, reason: string, now: number): Promise<void>;
  /**
   * Holds every provider on this host (an edge limit: Cloudflare in front of the upstream refuses this
   * host, whatever the key); pick answers 'edge' until then. The later deadline wins.
   */
  holdHost(until: number, reason: string, now: number): Promise<void>;
  /** The host hold's deadline (0 when none). */
  hostHeldUntil(now: number): Promise<number>;
  /** A success: the key's doubling resets and its recovering gates are open to full traffic again. */
  succeed(view: KeyView, now: number): Promise<void>;
  /** A trial call ended without success: its hold on the gates ends, another request may try. */
  endTrial(view: KeyView, now: number): Promise<void>;
  /**
   * Keeps a learned limit of the scope's gate (a day; relearning replaces the one of the same kind).
   * With `lengthen` (a 429) the window only lengthens while the limit lives (`relearnedWindow`).
   */
  learnLimit(req: LearnRequest, now: number): Promise<void>;
  /**
   * A call picked at `pickedAt` that the upstream refused itself (its own 429, an edge refusal): it no
   * longer counts against the learned limits of the key's gates. A call it admitted (a 5xx, a
   * provider's 429) is never refunded: the upstream counted it (docs/design.md#learned-limits).
   */
  refund(view: KeyView, pickedAt: number): Promise<void>;
  /** Disables a key (reason) or reactivates it (null); `now` orders admin actions (the later wins). */
  setDisabled(keyId: string, reason: string | null, now: number): Promise<void>;
  learnAccount(account: string, learned: string, now: number): Promise<void>;
  /** Clears cooldowns of these keys (their key, account and account+model gates), or of everything. */
  resetCooldowns(views: KeyView[] | undefined, now: number): Promise<void>;
  /** Model congestion deadline (0 when none). */
  congestedUntil(model: string, now: number): Promise<number>;
  inspect(views: KeyView[], now: number): Promise<KeyInspection[]>;
  /**
   * Lets a section be saved with the store's state (snapshot) and restores it now if saved data
   * exists. Returns the function to call after the section changed. Stores that do not persist
   * (memory, Redis: the pool's counters are per instance there) never restore and ignore the call.
   */
  attach(name: string, section: StateSection): () => void;
  health(): StoreHealth;
  close(): Promise<void>;
}

/**
 * Deadlines are whole milliseconds everywhere (a fraction breaks Redis's PEXPIRE): every store rounds
 * a deadline up at its API, so that it never ends early, and a clock reading down.
 */
export const deadlineMs = (t: number): number => Math.ceil(t);
export const clockMs = (t: number): number => Math.floor(t);
