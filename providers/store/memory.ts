import { doubling } from '../dispatch/backoff';
import { isLive, type LearnedLimit, type LearnedSet, relearnedWindow, sameKind, windowStart } from '../limits/learnedLimit';
import { dayWindow, minuteWindow, nextMinute, nextUtcMidnight } from '../limits/windows';
import { counterKey, gate, keyGates, learnedCounter, learnedCounterWindow, scopeGate } from './names';
import {
  deadlineMs,
  type CoolRequest,
  type KeyInspection,
  type KeyView,
  type LearnedView,
  type LearnRequest,
  type PickPlan,
  type PickResult,
  type StateSection,
  type StateStore,
  type StoreHealth,
} from './types';
import { EXPIRY, LEARNED_FULL } from './rules';
import { type FairState, MemoryFairState } from './fairState';

interface Gate {
  until: number;
  reason: string;
  /** Came back from cooling: one trial call at a time until a success. */
  recovering: boolean;
  /** The trial call in flight holds the gate until then (0: none). */
  trialUntil: number;
}

/** A gate as a snapshot written before the trial call had its name holds it. */
type SavedGate = Gate | (Omit<Gate, 'recovering' | 'trialUntil'> & { probing: boolean });

interface Counter {
  /** The budget counters' minute or day index; a learned limit's window start (ms). */
  window: number;
  count: number;
}

/** A value and when it was last written: the long-lived state expires from `at` (rules.ts). */
export interface Stamped<T> {
  value: T;
  at: number;
}

/** A disabled flag, or (value null) the record of a reactivation: the later admin action wins. */
export type DisabledEntry = Stamped<string | null>;

/** The whole state as plain data: what a snapshot file holds. */
export interface MemoryState {
  gates: Record<string, Gate>;
  disabled: Record<string, DisabledEntry>;
  strikes: Record<string, Stamped<number>>;
  aliases: Record<string, Stamped<string>>;
  counters: Record<string, Counter>;
  positions: Record<string, Stamped<number>>;
  /** Learned limits by gate, then by window length (absent in snapshots written before them). */
  learned?: Record<string, LearnedSet>;
}

/** A gate still has an effect: cooling, or recovering within its expiry; congestion ends at its deadline. */
export function gateLive(g: Gate, now: number): boolean {
  return g.until > now || (g.recovering && g.until + EXPIRY.recoveringMs > now);
}

const fresh = <T>(s: Stamped<T> | undefined, ttlMs: number, now: number): s is Stamped<T> => s !== undefined && now - s.at < ttlMs;

/** A snapshot written before the values were stamped holds bare values: they count from `at`. */
function stamped<T>(v: unknown, at: number): Stamped<T> {
  return typeof v === 'object' && v !== null && 'at' in v && 'value' in v ? (v as Stamped<T>) : { value: v as T, at };
}

/** In-process state: the default store, and the base of the snapshot store. */
export class MemoryStore implements StateStore {
  readonly kind: StoreHealth['kind'] = 'memory';
  readonly fair: FairState = new MemoryFairState();
  protected gates = new Map<string, Gate>();
  protected disabled = new Map<string, DisabledEntry>();
  protected strikes = new Map<string, Stamped<number>>();
  protected aliases = new Map<string, Stamped<string>>();
  protected counters = new Map<string, Counter>();
  protected positions = new Map<string, Stamped<number>>();
  /** Learned limits by gate name; their counters live in `counters` under `learnedCounter` names. */
  protected learned = new Map<string, LearnedSet>();

  /** Called after every change; the snapshot store schedules a write here. */
  protected changed(): void {}

  /** The account in force for a configured one (a learned alias, while it lasts). */
  resolve(account: string, now: number): string {
    const a = this.aliases.get(account);
    return fresh(a, EXPIRY.accountMs, now) ? a.value : account;
  }

  /** The gate if it still has an effect (an expired one is dropped on the way). */
  private liveGate(name: string, now: number): Gate | undefined {
    const g = this.gates.get(name);
    if (!g) return undefined;
    if (gateLive(g, now)) return g;
    this.gates.delete(name);
    return undefined;
  }

  private isDisabled(keyId: string, now: number): string | null {
    const d = this.disabled.get(keyId);
    return fresh(d, EXPIRY.disabledMs, now) ? d.value : null;
  }

  private strikeCount(keyId: string, now: number): number {
    const s = this.strikes.get(keyId);
    return fresh(s, EXPIRY.strikesMs, now) ? s.value : 0;
  }

  private count(key: string, window: number): number {
    const c = this.counters.get(key);
    return c && c.window === window ? c.count : 0;
  }

  private bump(key: string, window: number): void {
    const c = this.counters.get(key);
    if (c && c.window === window) c.count++;
    else this.counters.set(key, { window, count: 1 });
  }

  async pick(plan: PickPlan, now: number, avoid?: readonly string[]): Promise<PickResult> {
    return this.pickSync(plan, now, avoid);
  }

  /**
   * The decision itself, synchronous so that it is atomic within the process. With keys to avoid,
   * the tiers are: other non-reserve keys, the avoided non-reserve keys, other reserves, everything.
   */
  pickSync(plan: PickPlan, now: number, avoid?: readonly string[]): PickResult {
    if (avoid && avoid.length > 0) {
      const regular = plan.candidates.length - plan.reserves;
      for (const [limit, skip] of [[regular, avoid], [regular, undefined], [plan.candidates.length, avoid]] as const) {
        const r = this.choose(plan, now, limit, skip);
        if (r.keyId !== null) return r;
      }
    }
    return this.choose(plan, now, plan.candidates.length, undefined);
  }

  /** The first usable key among the first `limit` candidates (in rotation order), skipping `avoid`. */
  private choose(plan: PickPlan, now: number, limit: number, avoid: readonly string[] | undefined): PickResult {
    const edge = this.gates.get(gate.host);
    if (edge && edge.until > now) return { keyId: null, retryAt: edge.until, reason: 'edge' };
    const congested = this.gates.get(gate.model(plan.model));
    if (congested && congested.until > now) return { keyId: null, retryAt: congested.until, reason: 'congested' };
    const { candidates, rotating } = plan;
    const pos = this.positions.get(plan.provider);
    const start = rotating > 0 && fresh(pos, EXPIRY.positionMs, now) ? pos.value % rotating : 0;
    const minute = minuteWindow(now);
    const day = dayWindow(now);
    let soonest = Infinity;
    let anyEnabled = false;
    let budgetBound = false;
    for (let i = 0; i < limit; i++) {
      const index = i < rotating ? (start + i) % rotating : i;
      const c = candidates[index];
      if (this.isDisabled(c.keyId, now) !== null || avoid?.includes(c.keyId)) continue;
      anyEnabled = true;
      const account = this.resolve(c.account, now);
      const gates = keyGates(c.keyId, account, plan.model, plan.free);
      let blockedUntil = 0;
      let trial = false;
      let full = false;
      for (const name of gates) {
        const g = this.liveGate(name, now);
        if (!g) continue;
        if (g.until > now) {
          blockedUntil = Math.max(blockedUntil, g.until);
          // A learned limit's full window is a spent budget, not a 429's cooldown.
          if (g.reason === LEARNED_FULL) full = true;
        }
        else if (g.recovering) {
          if (g.trialUntil > now) blockedUntil = Math.max(blockedUntil, Math.min(g.trialUntil, now + 1000));
          else trial = true;
        }
      }
      if (blockedUntil > 0) {
        if (full) budgetBound = true;
        soonest = Math.min(soonest, blockedUntil);
        continue;
      }
      const budgetUntil = Math.max(this.budgetBlock(plan, c.keyId, account, now), this.learnedBlock(gates, now));
      if (budgetUntil > 0) {
        budgetBound = true;
        soonest = Math.min(soonest, budgetUntil);
        continue;
      }
      if (trial) {
        for (const name of gates) {
          const g = this.gates.get(name);
          if (g && g.recovering) g.trialUntil = now + plan.trialTtlMs;
        }
      }
      this.bump(counterKey.keyMinute(c.keyId, plan.model), minute);
      this.bump(counterKey.keyDay(c.keyId, plan.model), day);
      if (plan.free) {
        this.bump(counterKey.accountMinute(account), minute);
        this.bump(counterKey.accountDay(account), day);
      }
      const learned = this.liveLearned(gates, now);
      for (const [name, l] of learned) {
        const start = windowStart(l, now);
        this.bump(learnedCounter(name, l.windowMs), start);
        if (this.count(learnedCounter(name, l.windowMs), start) >= l.limit) this.holdFull(name, start + l.windowMs, now);
      }
      if (index < rotating) this.positions.set(plan.provider, { value: index + 1, at: now });
      this.changed();
      return learned.length > 0 ? { keyId: c.keyId, index, trial, learned: true } : { keyId: c.keyId, index, trial };
    }
    if (!anyEnabled) return { keyId: null, retryAt: null, reason: 'disabled' };
    return { keyId: null, retryAt: soonest, reason: budgetBound ? 'budget' : 'cooling' };
  }

  /** When a spent budget frees up again, or 0 when none is spent. */
  private budgetBlock(plan: PickPlan, keyId: string, account: string, now: number): number {
    const minute = minuteWindow(now);
    const day = dayWindow(now);
    let until = 0;
    if (plan.keyRpd !== undefined && this.count(counterKey.keyDay(keyId, plan.model), day) >= plan.keyRpd) until = nextUtcMidnight(now);
    else if (plan.keyRpm !== undefined && this.count(counterKey.keyMinute(keyId, plan.model), minute) >= plan.keyRpm) until = nextMinute(now);
    if (plan.free) {
      if (plan.accountRpd !== undefined && this.count(counterKey.accountDay(account), day) >= plan.accountRpd) until = Math.max(until, nextUtcMidnight(now));
      else if (plan.accountRpm !== undefined && this.count(counterKey.accountMinute(account), minute) >= plan.accountRpm) until = Math.max(until, nextMinute(now));
    }
    return until;
  }

  /** The live learned limits of these gates. */
  private liveLearned(gates: readonly string[], now: number): Array<[string, LearnedLimit]> {
    const out: Array<[string, LearnedLimit]> = [];
    for (const name of gates) {
      const set = this.learned.get(name);
      if (!set) continue;
      for (const l of Object.values(set)) if (isLive(l, now)) out.push([name, l]);
    }
    return out;
  }

  /** When a spent learned limit frees up again (its window's end), or 0 when none is spent. */
  private learnedBlock(gates: readonly string[], now: number): number {
    let until = 0;
    for (const [name, l] of this.liveLearned(gates, now)) {
      const start = windowStart(l, now);
      if (this.count(learnedCounter(name, l.windowMs), start) >= l.limit) until = Math.max(until, start + l.windowMs);
    }
    return until;
  }

  /**
   * A learned limit's window is full: its gate cools until the window ends, and after that (the
   * window's end is orche's reckoning, not a reset the upstream sent) one trial call goes first;
   * the others follow when it succeeds. A later deadline already there wins.
   */
  private holdFull(name: string, until: number, now: number): void {
    const g = this.liveGate(name, now);
    if (g && g.until >= until) return;
    this.gates.set(name, { until, reason: LEARNED_FULL, recovering: true, trialUntil: 0 });
  }

  async learnLimit(req: LearnRequest, now: number): Promise<void> {
    const name = scopeGate(req.scope, req.keyId, this.resolve(req.account, now), req.model);
    const set = this.learned.get(name) ?? {};
    // A limit of the same kind (up to a minute, or longer) is replaced; a 429's window only lengthens.
    let windowMs = req.windowMs;
    for (const [w, l] of Object.entries(set)) {
      if (!isLive(l, now)) delete set[w];
      else if (sameKind(l.windowMs, req.windowMs)) {
        if (req.lengthen) windowMs = relearnedWindow(req.windowMs, l, req.resetAt, now);
        delete set[w];
      }
    }
    // Its windows are anchored at the reset this answer sent (docs/design.md#learned-limits).
    const learned: LearnedLimit = { limit: req.limit, windowMs, source: req.source, learnedAt: now, anchor: deadlineMs(req.resetAt) };
    set[String(windowMs)] = learned;
    this.learned.set(name, set);
    if (req.used !== undefined) {
      // The upstream's own count of the current window: orche's starts there (never lower).
      const counter = learnedCounter(name, windowMs);
      const start = windowStart(learned, now);
      const count = Math.max(this.count(counter, start), req.used);
      this.counters.set(counter, { window: start, count });
      if (count >= req.limit) this.holdFull(name, start + windowMs, now);
    }
    this.changed();
  }

  /**
   * The counters of the key's live learned limits at `now`, as [name, window start, window end, n]: what a
   * pick counts (n 1) or a refund takes back (n -1), for the Redis store's outage journal.
   */
  learnedCounts(view: KeyView, now: number, n: number): Array<[string, number, number, number]> {
    return this.liveLearned(this.gatesOf(view, now), now).map(([name, l]) => {
      const start = windowStart(l, now);
      return [learnedCounter(name, l.windowMs), start, start + l.windowMs, n];
    });
  }

  async refund(view: KeyView, pickedAt: number): Promise<void> {
    let dirty = false;
    for (const [name, l] of this.liveLearned(this.gatesOf(view, pickedAt), pickedAt)) {
      const c = this.counters.get(learnedCounter(name, l.windowMs));
      const start = windowStart(l, pickedAt);
      if (c && c.window === start && c.count > 0) {
        c.count--;
        dirty = true;
        // Room again in the window: the gate its fullness cooled opens (a 429's cooldown stays).
        const g = this.gates.get(name);
        if (c.count < l.limit && g && g.reason === LEARNED_FULL && g.until === start + l.windowMs) this.gates.delete(name);
      }
    }
    if (dirty) this.changed();
  }

  async cool(req: CoolRequest, now: number): Promise<number> {
    const strikes = this.strikeCount(req.keyId, now) + (req.strike === false ? 0 : 1);
    if (req.strike !== false) this.strikes.set(req.keyId, { value: strikes, at: now });
    const until = deadlineMs(req.until ?? now + doubling(strikes, req.baseMs, req.maxMs));
    const name = scopeGate(req.scope, req.keyId, this.resolve(req.account, now), req.model);
    const g = this.liveGate(name, now);
    if (g && g.until >= until) {
      g.recovering = true;
      // A full window's hold that a 429 met is the upstream's now: a refund no longer opens it.
      if (g.reason === LEARNED_FULL) g.reason = req.reason;
      this.changed();
      return g.until;
    }
    this.gates.set(name, { until, reason: req.reason, recovering: true, trialUntil: 0 });
    this.changed();
    return until;
  }

  async congest(model: string, until: number, reason: string, _now: number): Promise<void> {
    this.hold(gate.model(model), deadlineMs(until), reason);
  }

  async holdHost(until: number, reason: string, _now: number): Promise<void> {
    this.hold(gate.host, deadlineMs(until), reason);
  }

  /** A gate no key owns (model congestion, the host's edge hold): the later deadline wins, no trial call after. */
  private hold(name: string, until: number, reason: string): void {
    const g = this.gates.get(name);
    if (g && g.until >= until) return;
    this.gates.set(name, { until, reason, recovering: false, trialUntil: 0 });
    this.changed();
  }

  private gatesOf(view: KeyView, now: number): string[] {
    return keyGates(view.keyId, this.resolve(view.account, now), view.model, view.free);
  }

  async succeed(view: KeyView, now: number): Promise<void> {
    let dirty = this.strikes.delete(view.keyId);
    for (const name of this.gatesOf(view, now)) {
      const g = this.gates.get(name);
      // A gate cooled again meanwhile (by another request) stays shut.
      if (g && g.recovering && g.until <= now) {
        this.gates.delete(name);
        dirty = true;
      }
    }
    if (dirty) this.changed();
  }

  async endTrial(view: KeyView, now: number): Promise<void> {
    for (const name of this.gatesOf(view, now)) {
      const g = this.gates.get(name);
      if (g && g.recovering) g.trialUntil = 0;
    }
  }

  async setDisabled(keyId: string, reason: string | null, now: number): Promise<void> {
    // A reactivation is kept (value null) with its time, so that a merge knows which action came later.
    this.disabled.set(keyId, { value: reason, at: now });
    if (reason === null) {
      this.gates.delete(gate.key(keyId));
      this.strikes.delete(keyId);
    }
    this.changed();
  }

  async learnAccount(account: string, learned: string, now: number): Promise<void> {
    if (account === learned) return;
    this.aliases.set(account, { value: learned, at: now });
    this.changed();
  }

  async resetCooldowns(views: KeyView[] | undefined, now: number): Promise<void> {
    if (!views) {
      this.gates.clear();
      this.strikes.clear();
    } else {
      for (const v of views) {
        for (const name of this.gatesOf(v, now)) this.gates.delete(name);
        this.gates.delete(gate.model(v.model));
        this.strikes.delete(v.keyId);
      }
    }
    this.changed();
  }

  async congestedUntil(model: string, now: number): Promise<number> {
    const g = this.gates.get(gate.model(model));
    return g && g.until > now ? g.until : 0;
  }

  async hostHeldUntil(now: number): Promise<number> {
    const g = this.gates.get(gate.host);
    return g && g.until > now ? g.until : 0;
  }

  async inspect(views: KeyView[], now: number): Promise<KeyInspection[]> {
    const minute = minuteWindow(now);
    const day = dayWindow(now);
    return views.map((v) => {
      const account = this.resolve(v.account, now);
      let cooldownUntil = 0;
      let cooldownReason: string | null = null;
      let recovering = false;
      for (const name of keyGates(v.keyId, account, v.model, v.free)) {
        const g = this.liveGate(name, now);
        if (!g) continue;
        if (g.until > now && g.until > cooldownUntil) {
          cooldownUntil = g.until;
          cooldownReason = g.reason;
        }
        if (g.recovering) recovering = true;
      }
      const learned: LearnedView[] = this.liveLearned(keyGates(v.keyId, account, v.model, v.free), now).map(([name, l]) => ({
        ...l,
        gate: name,
        used: this.count(learnedCounter(name, l.windowMs), windowStart(l, now)),
      }));
      return {
        learned,
        disabled: this.isDisabled(v.keyId, now),
        cooldownUntil,
        cooldownReason,
        account,
        recovering,
        minuteCount: this.count(counterKey.keyMinute(v.keyId, v.model), minute),
        dayCount: this.count(counterKey.keyDay(v.keyId, v.model), day),
      };
    });
  }

  /** Sections saved with the state; only the snapshot store reads them. */
  protected sections = new Map<string, StateSection>();

  attach(name: string, section: StateSection): () => void {
    this.sections.set(name, section);
    return () => this.changed();
  }

  health(): StoreHealth {
    return { kind: this.kind, ok: true };
  }

  async close(): Promise<void> {}

  /** Plain data for a snapshot (and the Redis merge); expired state and old windows are left out. */
  exportState(now: number): MemoryState {
    const day = dayWindow(now);
    const minute = minuteWindow(now);
    const gates: Record<string, Gate> = {};
    for (const [k, g] of this.gates) if (gateLive(g, now)) gates[k] = { ...g, trialUntil: 0 };
    const counters: Record<string, Counter> = {};
    for (const [k, c] of this.counters) if (c.window === day || c.window === minute || isCurrentLearned(k, c, now)) counters[k] = { ...c };
    const learned: Record<string, LearnedSet> = {};
    for (const [name, set] of this.learned) {
      const liveSet = Object.fromEntries(Object.entries(set).filter(([, l]) => isLive(l, now)));
      if (Object.keys(liveSet).length > 0) learned[name] = liveSet;
    }
    const live = <T>(m: Map<string, Stamped<T>>, ttl: number) => Object.fromEntries([...m].filter(([, s]) => fresh(s, ttl, now)));
    return {
      gates,
      disabled: live(this.disabled, EXPIRY.disabledMs),
      strikes: live(this.strikes, EXPIRY.strikesMs),
      aliases: live(this.aliases, EXPIRY.accountMs),
      counters,
      positions: live(this.positions, EXPIRY.positionMs),
      learned,
    };
  }

  /** `savedAt` stamps the bare values of a snapshot written before values carried their time. */
  importState(state: MemoryState, savedAt: number): void {
    const stampAll = <T>(r: Record<string, unknown>) => new Map(Object.entries(r).map(([k, v]) => [k, stamped<T>(v, savedAt)]));
    const gates = state.gates as Record<string, SavedGate>;
    this.gates = new Map(Object.entries(gates).map(([k, g]) => [k, 'probing' in g ? { until: g.until, reason: g.reason, recovering: g.probing, trialUntil: 0 } : g]));
    this.disabled = stampAll<string | null>(state.disabled);
    this.strikes = stampAll<number>(state.strikes);
    this.aliases = stampAll<string>(state.aliases);
    this.counters = new Map(Object.entries(state.counters));
    this.positions = stampAll<number>(state.positions);
    this.learned = new Map(Object.entries(state.learned ?? {}));
  }
}

/** A learned limit's counter (`l:<gate>|<windowMs>`, its window's start) still in its window. */
function isCurrentLearned(name: string, c: Counter, now: number): boolean {
  const w = learnedCounterWindow(name);
  return w !== undefined && c.window <= now && now < c.window + w;
}
