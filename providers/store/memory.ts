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
    const edge = this.gates.get(gate.host);
    if (edge && edge.until > now) return { keyId: null, retryAt: edge.until, reason: 'edge' };
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
      const budgetUntil = this.budgetBlock(plan, c.keyId, account, minute, day);
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
    this.hold(gate.model(model), until, reason);
  }

  async holdHost(until: number, reason: string, _now: number): Promise<void> {
    this.hold(gate.host, until, reason);
  }

  /** A gate no key owns (model congestion, the host's edge hold): the later deadline wins, no probe after. */
  private hold(name: string, until: number, reason: string): void {
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

  async hostHeldUntil(now: number): Promise<number> {
    const g = this.gates.get(gate.host);
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
      return {
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
    for (const [k, c] of this.counters) if (c.window === day || c.window === minute) counters[k] = { ...c };
    return {
      gates,
      disabled: Object.fromEntries(this.disabled),
      strikes: Object.fromEntries(this.strikes),
      aliases: Object.fromEntries(this.aliases),
      counters,
      positions: Object.fromEntries(this.positions),
    };
  }

  importState(state: MemoryState): void {
    this.gates = new Map(Object.entries(state.gates));
    this.disabled = new Map(Object.entries(state.disabled));
    this.strikes = new Map(Object.entries(state.strikes));
    this.aliases = new Map(Object.entries(state.aliases));
    this.counters = new Map(Object.entries(state.counters));
    this.positions = new Map(Object.entries(state.positions));
  }
}
