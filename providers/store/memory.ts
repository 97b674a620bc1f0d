import { isLive, learnedCounter, type LearnedLimit, type LearnedSet, relearnedWindow, sameKind } from '../learnedLimit';
import {
  counterKey,
  DAY_MS,
  MINUTE_MS,
  dayWindow,
  doublingCooldown,
  gate,
  keyGates,
  minuteWindow,
  scopeGate,
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

interface Gate {
  until: number;
  reason: string;
  /** Came back from cooling: one request at a time until a success. */
  probing: boolean;
  probeUntil: number;
}

interface Counter {
  window: number;
  count: number;
}

/** The whole state as plain data: what a snapshot file holds. */
export interface MemoryState {
  gates: Record<string, Gate>;
  disabled: Record<string, string>;
  strikes: Record<string, number>;
  aliases: Record<string, string>;
  counters: Record<string, Counter>;
  positions: Record<string, number>;
  /** Learned limits by gate, then by window length (absent in snapshots written before them). */
  learned?: Record<string, LearnedSet>;
}

/** In-process state: the default store, and the base of the snapshot store. */
export class MemoryStore implements StateStore {
  readonly kind: StoreHealth['kind'] = 'memory';
  protected gates = new Map<string, Gate>();
  protected disabled = new Map<string, string>();
  protected strikes = new Map<string, number>();
  protected aliases = new Map<string, string>();
  protected counters = new Map<string, Counter>();
  protected positions = new Map<string, number>();
  /** Learned limits by gate name; their counters live in `counters` under `learnedCounter` names. */
  protected learned = new Map<string, LearnedSet>();

  /** Called after every change; the snapshot store schedules a write here. */
  protected changed(): void {}

  private resolve(account: string): string {
    return this.aliases.get(account) ?? account;
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
    if (avoid && avoid.length > 0) {
      const other = this.pickSync(plan, now, avoid);
      if (other.keyId !== null) return other;
    }
    return this.pickSync(plan, now);
  }

  /** The decision itself, synchronous so that it is atomic within the process. */
  pickSync(plan: PickPlan, now: number, avoid?: readonly string[]): PickResult {
    const congested = this.gates.get(gate.model(plan.model));
    if (congested && congested.until > now) return { keyId: null, retryAt: congested.until, reason: 'congested' };
    const { candidates, rotating } = plan;
    const start = rotating > 0 ? (this.positions.get(plan.provider) ?? 0) % rotating : 0;
    const minute = minuteWindow(now);
    const day = dayWindow(now);
    let soonest = Infinity;
    let anyEnabled = false;
    let budgetBound = false;
    for (let i = 0; i < candidates.length; i++) {
      const index = i < rotating ? (start + i) % rotating : i;
      const c = candidates[index];
      if (this.disabled.has(c.keyId) || avoid?.includes(c.keyId)) continue;
      anyEnabled = true;
      const account = this.resolve(c.account);
      const gates = keyGates(c.keyId, account, plan.model, plan.free);
      let blockedUntil = 0;
      let probe = false;
      for (const name of gates) {
        const g = this.gates.get(name);
        if (!g) continue;
        if (g.until > now) blockedUntil = Math.max(blockedUntil, g.until);
        else if (g.probing) {
          if (g.probeUntil > now) blockedUntil = Math.max(blockedUntil, Math.min(g.probeUntil, now + 1000));
          else probe = true;
        }
      }
      if (blockedUntil > 0) {
        soonest = Math.min(soonest, blockedUntil);
        continue;
      }
      const budgetUntil = Math.max(this.budgetBlock(plan, c.keyId, account, minute, day), this.learnedBlock(gates, now));
      if (budgetUntil > 0) {
        budgetBound = true;
        soonest = Math.min(soonest, budgetUntil);
        continue;
      }
      if (probe) {
        for (const name of gates) {
          const g = this.gates.get(name);
          if (g && g.probing) g.probeUntil = now + plan.probeTtlMs;
        }
      }
      this.bump(counterKey.keyMinute(c.keyId, plan.model), minute);
      this.bump(counterKey.keyDay(c.keyId, plan.model), day);
      if (plan.free) {
        this.bump(counterKey.accountMinute(account), minute);
        this.bump(counterKey.accountDay(account), day);
      }
      for (const [name, l] of this.liveLearned(gates, now)) this.bump(learnedCounter(name, l.windowMs), Math.floor(now / l.windowMs));
      if (index < rotating) this.positions.set(plan.provider, index + 1);
      this.changed();
      return { keyId: c.keyId, index, probe };
    }
    if (!anyEnabled) return { keyId: null, retryAt: null, reason: 'disabled' };
    return { keyId: null, retryAt: soonest, reason: budgetBound ? 'budget' : 'cooling' };
  }

  /** When a spent budget frees up again, or 0 when none is spent. */
  private budgetBlock(plan: PickPlan, keyId: string, account: string, minute: number, day: number): number {
    let until = 0;
    if (plan.keyRpd !== undefined && this.count(counterKey.keyDay(keyId, plan.model), day) >= plan.keyRpd) until = (day + 1) * DAY_MS;
    else if (plan.keyRpm !== undefined && this.count(counterKey.keyMinute(keyId, plan.model), minute) >= plan.keyRpm) until = (minute + 1) * MINUTE_MS;
    if (plan.free) {
      if (plan.accountRpd !== undefined && this.count(counterKey.accountDay(account), day) >= plan.accountRpd) until = Math.max(until, (day + 1) * DAY_MS);
      else if (plan.accountRpm !== undefined && this.count(counterKey.accountMinute(account), minute) >= plan.accountRpm) until = Math.max(until, (minute + 1) * MINUTE_MS);
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
      const window = Math.floor(now / l.windowMs);
      if (this.count(learnedCounter(name, l.windowMs), window) >= l.limit) until = Math.max(until, (window + 1) * l.windowMs);
    }
    return until;
  }

  async learnLimit(req: LearnRequest, now: number): Promise<void> {
    const name = scopeGate(req.scope, req.keyId, this.resolve(req.account), req.model);
    const set = this.learned.get(name) ?? {};
    // A limit of the same kind (up to a minute, or longer) is replaced; its window only lengthens.
    let windowMs = req.windowMs;
    for (const [w, l] of Object.entries(set)) {
      if (!isLive(l, now)) delete set[w];
      else if (sameKind(l.windowMs, req.windowMs)) {
        windowMs = relearnedWindow(req.windowMs, l, req.resetAt, now);
        delete set[w];
      }
    }
    set[String(windowMs)] = { limit: req.limit, windowMs, source: req.source, learnedAt: now };
    this.learned.set(name, set);
    this.changed();
  }

  async refund(view: KeyView, pickedAt: number): Promise<void> {
    let dirty = false;
    for (const [name, l] of this.liveLearned(this.gatesOf(view), pickedAt)) {
      const c = this.counters.get(learnedCounter(name, l.windowMs));
      if (c && c.window === Math.floor(pickedAt / l.windowMs) && c.count > 0) {
        c.count--;
        dirty = true;
      }
    }
    if (dirty) this.changed();
  }

  async cool(req: CoolRequest, now: number): Promise<number> {
    const strikes = (this.strikes.get(req.keyId) ?? 0) + (req.strike === false ? 0 : 1);
    if (strikes > 0) this.strikes.set(req.keyId, strikes);
    const until = req.until ?? now + doublingCooldown(strikes, req.baseMs, req.maxMs);
    const name = scopeGate(req.scope, req.keyId, this.resolve(req.account), req.model);
    const g = this.gates.get(name);
    if (g && g.until >= until) {
      g.probing = true;
      this.changed();
      return g.until;
    }
    this.gates.set(name, { until, reason: req.reason, probing: true, probeUntil: 0 });
    this.changed();
    return until;
  }

  async congest(model: string, until: number, reason: string, _now: number): Promise<void> {
    const name = gate.model(model);
    const g = this.gates.get(name);
    if (g && g.until >= until) return;
    this.gates.set(name, { until, reason, probing: false, probeUntil: 0 });
    this.changed();
  }

  private gatesOf(view: KeyView): string[] {
    return keyGates(view.keyId, this.resolve(view.account), view.model, view.free);
  }

  async succeed(view: KeyView, now: number): Promise<void> {
    let dirty = this.strikes.delete(view.keyId);
    for (const name of this.gatesOf(view)) {
      const g = this.gates.get(name);
      // A gate cooled again meanwhile (by another request) stays shut.
      if (g && g.probing && g.until <= now) {
        this.gates.delete(name);
        dirty = true;
      }
    }
    if (dirty) this.changed();
  }

  async release(view: KeyView): Promise<void> {
    for (const name of this.gatesOf(view)) {
      const g = this.gates.get(name);
      if (g && g.probing) g.probeUntil = 0;
    }
  }

  async setDisabled(keyId: string, reason: string | null): Promise<void> {
    if (reason === null) {
      this.disabled.delete(keyId);
      this.gates.delete(gate.key(keyId));
      this.strikes.delete(keyId);
    } else {
      this.disabled.set(keyId, reason);
    }
    this.changed();
  }

  async learnAccount(account: string, learned: string): Promise<void> {
    if (account === learned || this.aliases.get(account) === learned) return;
    this.aliases.set(account, learned);
    this.changed();
  }

  async resetCooldowns(views?: KeyView[]): Promise<void> {
    if (!views) {
      this.gates.clear();
      this.strikes.clear();
    } else {
      for (const v of views) {
        for (const name of this.gatesOf(v)) this.gates.delete(name);
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

  async inspect(views: KeyView[], now: number): Promise<KeyInspection[]> {
    const minute = minuteWindow(now);
    const day = dayWindow(now);
    return views.map((v) => {
      const account = this.resolve(v.account);
      let cooldownUntil = 0;
      let cooldownReason: string | null = null;
      let recovering = false;
      for (const name of keyGates(v.keyId, account, v.model, v.free)) {
        const g = this.gates.get(name);
        if (!g) continue;
        if (g.until > now && g.until > cooldownUntil) {
          cooldownUntil = g.until;
          cooldownReason = g.reason;
        }
        if (g.probing) recovering = true;
      }
      const learned: LearnedView[] = this.liveLearned(keyGates(v.keyId, account, v.model, v.free), now).map(([name, l]) => ({
        ...l,
        gate: name,
        used: this.count(learnedCounter(name, l.windowMs), Math.floor(now / l.windowMs)),
      }));
      return {
        learned,
        disabled: this.disabled.get(v.keyId) ?? null,
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

  /** Plain data for a snapshot; expired gates and old windows are left out. */
  exportState(now: number): MemoryState {
    const day = dayWindow(now);
    const minute = minuteWindow(now);
    const gates: Record<string, Gate> = {};
    for (const [k, g] of this.gates) if (g.until > now || g.probing) gates[k] = { ...g, probeUntil: 0 };
    const counters: Record<string, Counter> = {};
    for (const [k, c] of this.counters) if (c.window === day || c.window === minute || isCurrentLearned(k, c, now)) counters[k] = { ...c };
    const learned: Record<string, LearnedSet> = {};
    for (const [name, set] of this.learned) {
      const live = Object.fromEntries(Object.entries(set).filter(([, l]) => isLive(l, now)));
      if (Object.keys(live).length > 0) learned[name] = live;
    }
    return {
      gates,
      disabled: Object.fromEntries(this.disabled),
      strikes: Object.fromEntries(this.strikes),
      aliases: Object.fromEntries(this.aliases),
      counters,
      positions: Object.fromEntries(this.positions),
      learned,
    };
  }

  importState(state: MemoryState): void {
    this.gates = new Map(Object.entries(state.gates));
    this.disabled = new Map(Object.entries(state.disabled));
    this.strikes = new Map(Object.entries(state.strikes));
    this.aliases = new Map(Object.entries(state.aliases));
    this.counters = new Map(Object.entries(state.counters));
    this.positions = new Map(Object.entries(state.positions));
    this.learned = new Map(Object.entries(state.learned ?? {}));
  }
}

/** A learned limit's counter (`l:<gate>|<windowMs>`) still in its window. */
function isCurrentLearned(name: string, c: Counter, now: number): boolean {
  if (!name.startsWith('l:')) return false;
  const w = Number(name.slice(name.lastIndexOf('|') + 1));
  return Number.isFinite(w) && w > 0 && c.window === Math.floor(now / w);
}
