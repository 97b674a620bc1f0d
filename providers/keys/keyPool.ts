import type { Config, KeyConfig, ProviderConfig } from '../../config';
import { isFreeModel, undeclaredAccount } from './keys';
import { PoolEmitter } from './events';
import { type CoolScope, NO_HINT_HOLD_MS, type Outcome } from '../limits/rateLimit';
import { emptyStats, type KeyStats, type SavedStats, statsFrom, costOf, totalTokens } from './keyStats';
import { describeKeys, type KeyStatus } from './keyStatus';
import { lessonOf, wholeWindow, windowFromReset } from '../limits/learnedLimit';
import { ACCOUNT_REFRESH_MS } from '../store/rules';
import type { KeyView, PickPlan, PickResult, StateStore } from '../store/types';

type PickedKey = Extract<PickResult, { keyId: string }>;

export type { KeyStats } from './keyStats';
export type { KeyState, KeyStatus } from './keyStatus';

/** One provider at run time: its config, its keys, its pick plan and its counters. */
export interface ProviderRuntime {
  config: ProviderConfig;
  keys: Map<string, KeyConfig>;
  plan: PickPlan;
  views: Map<string, KeyView>;
  stats: Map<string, KeyStats>;
  totals: KeyStats;
}

export interface PoolOptions {
  cooldownMs: number;
  maxCooldownMs: number;
  freeRpm?: number;
  freeRpd?: number;
  trialTtlMs: number;
  /** How long a model stays congested when the upstream gives no retry hint (NO_HINT_HOLD_MS). */
  congestionMs: number;
  /** The minute of learned per-minute limits (ORCHE_MINUTE_MS). */
  minuteMs?: number;
  /** How long every provider backs off after an edge (Cloudflare) 429 that names no Retry-After (NO_HINT_HOLD_MS). */
  edgeMs: number;
}

/**
 * Key states and picking for every provider, over a state store. Pure decisions live in the store's
 * pick and in rateLimit's classification; this applies outcomes and announces what changed.
 */
export class KeyPool {
  readonly events = new PoolEmitter();
  private readonly providers = new Map<string, ProviderRuntime>();
  /**
   * Accounts reported to the store, so that each is announced once and reported again only once a
   * day (the store forgets a learned account EXPIRY.accountMs after its last report).
   */
  private readonly learned = new Map<string, { userId: string; at: number; from: 'answer' | 'creator' }>();
  /** Tells a persistent store that the per-key counters changed (they are saved with its state). */
  private readonly statsChanged: () => void;

  constructor(
    providers: ProviderConfig[],
    readonly store: StateStore,
    private options: PoolOptions,
  ) {
    for (const p of providers) this.providers.set(p.slug, this.buildRuntime(p, false));
    this.statsChanged = store.attach('pool_stats', { save: () => this.saveStats(), restore: (data) => this.restoreStats(data) });
  }

  private saveStats(): SavedStats {
    const out: SavedStats = {};
    for (const [slug, rt] of this.providers) out[slug] = { totals: rt.totals, keys: Object.fromEntries(rt.stats) };
    return out;
  }

  /** Counters of keys and providers still configured come back; the rest of the saved data is dropped. */
  private restoreStats(data: unknown): void {
    if (typeof data !== 'object' || data === null) return;
    for (const [slug, saved] of Object.entries(data as Record<string, Partial<SavedStats[string]>>)) {
      const rt = this.providers.get(slug);
      if (!rt || typeof saved !== 'object' || saved === null) continue;
      rt.totals = statsFrom(saved.totals);
      for (const [id, stats] of Object.entries(saved.keys ?? {})) if (rt.stats.has(id)) rt.stats.set(id, statsFrom(stats));
    }
  }

  static optionsFrom(config: Config): PoolOptions {
    return {
      cooldownMs: config.rotation.cooldownMs,
      maxCooldownMs: config.rotation.maxCooldownMs,
      freeRpm: config.budgets.freeRpm,
      freeRpd: config.budgets.freeRpd,
      trialTtlMs: config.rotation.requestTimeoutMs,
      congestionMs: NO_HINT_HOLD_MS,
      minuteMs: config.pacing.minuteMs,
      edgeMs: NO_HINT_HOLD_MS,
    };
  }

  private buildRuntime(p: ProviderConfig, learnedFree: boolean, previous?: ProviderRuntime): ProviderRuntime {
    const free = learnedFree || isFreeModel(p.model);
    const ordered = [...p.keys.filter((k) => k.role !== 'reserve'), ...p.keys.filter((k) => k.role === 'reserve')];
    const plan: PickPlan = {
      provider: p.slug,
      model: p.model,
      free,
      candidates: ordered.map((k) => ({ keyId: k.id, account: k.account })),
      rotating: p.strategy === 'round-robin' ? p.keys.filter((k) => k.role !== 'reserve').length : 0,
      reserves: p.keys.filter((k) => k.role === 'reserve').length,
      keyRpm: p.rpm,
      keyRpd: p.rpd,
      accountRpm: free ? this.options.freeRpm : undefined,
      accountRpd: free ? this.options.freeRpd : undefined,
      trialTtlMs: this.options.trialTtlMs,
    };
    const stats = new Map<string, KeyStats>();
    for (const k of ordered) stats.set(k.id, previous?.stats.get(k.id) ?? emptyStats());
    return {
      config: p,
      keys: new Map(ordered.map((k) => [k.id, k])),
      plan,
      views: new Map(ordered.map((k) => [k.id, { keyId: k.id, account: k.account, model: p.model, free }])),
      stats,
      totals: previous?.totals ?? emptyStats(),
    };
  }

  /**
   * Replaces the providers (hot reload): kept keys keep their counters; state lives in the store.
   * `budgets` replaces the per-account free budgets (the other options need a restart).
   */
  reconfigure(providers: ProviderConfig[], budgets?: Pick<PoolOptions, 'freeRpm' | 'freeRpd'>): void {
    if (budgets) this.options = { ...this.options, freeRpm: budgets.freeRpm, freeRpd: budgets.freeRpd };
    const next = new Map<string, ProviderRuntime>();
    for (const p of providers) {
      const prev = this.providers.get(p.slug);
      next.set(p.slug, this.buildRuntime(p, prev?.plan.free === true && !isFreeModel(p.model) && prev.config.model === p.model, prev));
    }
    this.providers.clear();
    for (const [slug, rt] of next) this.providers.set(slug, rt);
  }

  list(): ProviderRuntime[] {
    return [...this.providers.values()];
  }

  get(slug: string): ProviderRuntime | undefined {
    return this.providers.get(slug);
  }

  /** The store keeps its state in this process (it picks synchronously): recording an outcome is no round trip. */
  get inProcess(): boolean {
    return this.store.pickSync !== undefined;
  }

  /** A key for the next call: at once where the store decides in this process (StateStore.pickSync). */
  pick(provider: ProviderRuntime, now: number, avoid?: readonly string[]): PickResult | Promise<PickResult> {
    return this.store.pickSync ? this.store.pickSync(provider.plan, now, avoid) : this.store.pick(provider.plan, now, avoid);
  }

  congestedUntil(provider: ProviderRuntime, now: number): Promise<number> {
    return this.store.congestedUntil(provider.plan.model, now);
  }

  /** Until when the edge holds every provider on this host back (0 when it does not). */
  edgeUntil(now: number): Promise<number> {
    return this.store.hostHeldUntil(now);
  }

  /** The secret itself, for the one upstream call; never for a response or a log line. */
  secret(provider: ProviderRuntime, keyId: string): string {
    const k = provider.keys.get(keyId);
    if (!k) throw new Error(`unknown key id ${keyId} for ${provider.config.slug}`);
    return k.key;
  }

  /**
   * Applies one upstream outcome to the key's state and counters, and announces what changed. `pick`:
   * what the pick of this call said (a trial call; learned limits counted).
   */
  async report(provider: ProviderRuntime, keyId: string, outcome: Outcome, latencyMs: number, now: number, pick: Pick<PickedKey, 'trial' | 'learned'> = { trial: false }, client?: string): Promise<void> {
    const slug = provider.config.slug;
    const view = provider.views.get(keyId);
    if (!view) return;
    const stats = provider.stats.get(keyId)!;
    const totals = provider.totals;
    stats.requests++;
    totals.requests++;
    stats.lastUsedAt = now;
    stats.latencyTotalMs += latencyMs;
    totals.latencyTotalMs += latencyMs;
    // The saving store writes later, after the outcome's counters below are in.
    this.statsChanged();
    if (outcome.rate) {
      stats.limit = outcome.rate.limit ?? stats.limit;
      stats.remaining = outcome.rate.remaining ?? stats.remaining;
      stats.resetAt = outcome.rate.resetAt ?? stats.resetAt;
    }
    if (outcome.userId) await this.learnAccountOf(view.account, keyId, outcome.userId, now, 'answer');
    this.events.emit('outcome', { at: now, provider: slug, keyId, kind: outcome.kind, status: outcome.status, latencyMs });
    await this.apply(provider, view, outcome, now, pick.trial, client);
    // The upstream counts what it admitted (docs/design.md#learned-limits): a call it refused itself (its own 429 or limit
    // cap, a 401/402 before routing, the edge in front of it) stops counting against the learned
    // limits. A call it passed on counts whatever came back (a 5xx, a provider's 429, a timeout):
    // refunding those only buys the next 429. Only a pick that counted a learned limit has anything
    // to give back: the others cost no round trip.
    const refused = outcome.kind === 'cool' || outcome.kind === 'edge' || outcome.kind === 'disable';
    if (pick.learned && refused) {
      await this.store.refund(view, now - latencyMs);
    }
  }

  /** The key's configured account belongs to `userId` (an answer's user_id, GET /key's creator_user_id). */
  private async learnAccountOf(account: string, keyId: string, userId: string, now: number, from: 'answer' | 'creator'): Promise<void> {
    if (userId === account) return;
    const known = this.learned.get(account);
    if (known?.userId === userId && now - known.at < ACCOUNT_REFRESH_MS) return;
    // The account an answer of the limiter named wins over the key's creator (an organization's key
    // names the member who made it), so that the two never take turns.
    if (from === 'creator' && known?.from === 'answer' && now - known.at < ACCOUNT_REFRESH_MS) return;
    this.learned.set(account, { userId, at: now, from });
    await this.store.learnAccount(account, userId, now);
    if (known?.userId !== userId) this.events.emit('account_learned', { at: now, keyId, account: userId });
  }

  /**
   * GET /key named the user that created the key (`creator_user_id`): keys with the same one share
   * account limits from the first call (docs/design.md#what-get-key-is-used-for). A declared account (`name:sk-or-…`) wins, and so
   * does an account an answer's user_id named.
   */
  async learnCreator(keyId: string, creatorUserId: string, now: number): Promise<void> {
    // Only where the key is listed without an account (the same key may be declared in another list).
    if (!this.findKey(keyId).some((x) => x.key.account === undeclaredAccount(keyId))) return;
    await this.learnAccountOf(undeclaredAccount(keyId), keyId, creatorUserId, now, 'creator');
  }

  /** What an outcome does to the key's state, and the counter it moves. */
  private async apply(provider: ProviderRuntime, view: KeyView, outcome: Outcome, now: number, trial: boolean, client?: string): Promise<void> {
    const slug = provider.config.slug;
    const keyId = view.keyId;
    const stats = provider.stats.get(keyId)!;
    const totals = provider.totals;
    switch (outcome.kind) {
      case 'success': {
        stats.successes++;
        totals.successes++;
        this.recordUsage(provider, keyId, (outcome.body as { usage?: unknown }).usage, now, client);
        await this.store.succeed(view, now);
        if (trial) this.events.emit('recovered', { at: now, provider: slug, keyId });
        break;
      }
      case 'cool': {
        stats.rateLimited++;
        totals.rateLimited++;
        if (outcome.scope === 'account_free' && !provider.plan.free) this.learnFreeTier(provider);
        await this.cool(provider, view, outcome.scope, outcome.until, outcome.reason, now);
        await this.learnLimit(provider, view, outcome, now);
        break;
      }
      case 'congested': {
        stats.rateLimited++;
        totals.rateLimited++;
        const until = outcome.until ?? now + this.options.congestionMs;
        await this.store.congest(provider.plan.model, until, outcome.reason, now);
        this.events.emit('congested', { at: now, provider: slug, model: provider.plan.model, until, reason: outcome.reason });
        break;
      }
      case 'edge': {
        // No key is at fault: the edge in front of the upstream refuses this host, whatever the key.
        stats.rateLimited++;
        totals.rateLimited++;
        const until = outcome.until ?? now + this.options.edgeMs;
        await this.store.holdHost(until, outcome.reason, now);
        this.events.emit('edge', { at: now, provider: slug, keyId, until, reason: outcome.reason });
        break;
      }
      case 'disable': {
        stats.failures++;
        totals.failures++;
        await this.store.setDisabled(keyId, outcome.reason, now);
        this.events.emit('disabled', { at: now, provider: slug, keyId, reason: outcome.reason });
        if (outcome.accountWide) await this.disableAccount(view, outcome.reason, now);
        break;
      }
      case 'retry': {
        stats.failures++;
        totals.failures++;
        break;
      }
      case 'client_error':
      case 'unservable':
        // The client's request was at fault, or no key could have served it: no failure counted against the key.
        break;
    }
    // The trial call's hold on its gates ends with the call, whatever its outcome (docs/design.md#the-state-rules-table): a 401 or
    // a 429 aimed at the key gate must not leave the account gate held, locking out its other keys.
    // Only the trial call ends it: another call of the key, picked before it cooled, ending meanwhile
    // must not let a second trial in.
    if (trial) await this.store.endTrial(view, now);
    // X-RateLimit-Remaining: 0: the limit that answered refuses the next call until its reset. A 429 names
    // its limit, and only that scope cools (a per-model cap never cools the account's other :free
    // models, docs/design.md#remaining-zero); an answer that names none is read as the account's limiter (docs/design.md#remaining-zero). The
    // upstream provider's or the edge's limits are not ours: those answers cool no key.
    const notOurs = outcome.kind === 'congested' || outcome.kind === 'edge';
    if (!notOurs && outcome.rate?.remaining === 0 && outcome.rate.resetAt && outcome.rate.resetAt > now) {
      const scope: CoolScope = outcome.kind === 'cool' ? outcome.scope : provider.plan.free ? 'account_free' : 'account';
      await this.cool(provider, view, scope, outcome.rate.resetAt, 'remaining_zero', now, false);
    }
  }

  /**
   * Disables every key of the key's account, in every provider: a 402 for the account's credits fails
   * each of them alike, so none should spend a call to find out (docs/design.md#blame-on-evidence). The account is the one in
   * force (learned from `user_id` where known).
   */
  private async disableAccount(view: KeyView, reason: string, now: number): Promise<void> {
    const all = this.list().flatMap((p) => [...p.views.values()].map((v) => ({ provider: p, view: v })));
    const others = all.filter((x) => x.view.keyId !== view.keyId);
    if (others.length === 0) return;
    const [mine, ...theirs] = await this.store.inspect([view, ...others.map((x) => x.view)], now);
    const done = new Set([view.keyId]);
    for (let i = 0; i < others.length; i++) {
      const { provider, view: v } = others[i];
      if (theirs[i].account !== mine.account || theirs[i].disabled !== null) continue;
      if (!done.has(v.keyId)) {
        done.add(v.keyId);
        await this.store.setDisabled(v.keyId, reason, now);
      }
      this.events.emit('disabled', { at: now, provider: provider.config.slug, keyId: v.keyId, reason });
    }
  }

  /** A 429 with `X-RateLimit-Limit` and a reset teaches its scope's limit (docs/design.md#learned-limits). */
  private async learnLimit(provider: ProviderRuntime, view: KeyView, outcome: Outcome, now: number): Promise<void> {
    const lesson = lessonOf(outcome, now);
    if (!lesson) return;
    const windowMs = windowFromReset(lesson.resetAt, now, this.options.minuteMs);
    if (windowMs === undefined) return;
    // The 429 says how much of its window is left (none, mostly): the window it fell in is that full.
    const remaining = outcome.rate?.remaining;
    const used = remaining !== undefined && remaining >= 0 && remaining < lesson.limit ? lesson.limit - remaining : undefined;
    await this.learnFor(provider, view, lesson.scope, lesson.limit, windowMs, lesson.resetAt, '429', now, used);
  }

  /**
   * GET /key told a limit of this key's scope (the account's free-model day) and, with `used`, how much
   * of its current window the upstream has counted: orche's count starts there.
   */
  async learnFromProbe(provider: ProviderRuntime, keyId: string, scope: CoolScope, limit: number, windowMs: number, now: number, used?: number): Promise<void> {
    const view = provider.views.get(keyId);
    if (!view || !Number.isInteger(limit) || limit < 1 || !(windowMs > 0)) return;
    const seen = used !== undefined && Number.isFinite(used) && used >= 0 ? Math.floor(used) : undefined;
    await this.learnFor(provider, view, scope, limit, windowMs, undefined, 'key_probe', now, seen);
  }

  /** GET /key showed a scope spent until `until` (nothing left of the account's :free day): it cools without a call. */
  async coolFromProbe(provider: ProviderRuntime, keyId: string, scope: CoolScope, until: number, reason: string, now: number): Promise<void> {
    const view = provider.views.get(keyId);
    if (!view || !(until > now)) return;
    await this.cool(provider, view, scope, until, reason, now, false);
  }

  /**
   * Every lesson reaches the store through here. Its window is made whole and at least a second
   * (`wholeWindow`): a fractional window breaks Redis's expiries. A probe's reset is the window's
   * next boundary (the UTC day's end for the free-model day). Only a 429 may lengthen a window guessed too
   * short: a probe states the window itself.
   */
  private async learnFor(provider: ProviderRuntime, view: KeyView, scope: CoolScope, limit: number, rawWindowMs: number, reset: number | undefined, source: '429' | 'key_probe', now: number, used?: number): Promise<void> {
    const windowMs = wholeWindow(rawWindowMs);
    const resetAt = reset ?? (Math.floor(now / windowMs) + 1) * windowMs;
    await this.store.learnLimit({ keyId: view.keyId, account: view.account, model: view.model, scope, limit, windowMs, resetAt, source, lengthen: source === '429', ...(used === undefined ? {} : { used }) }, now);
    this.events.emit('limit_learned', { at: now, provider: provider.config.slug, keyId: view.keyId, scope, limit, windowMs });
  }

  /**
   * Tokens and cost a call used, from its `usage` (a stream's arrives in its last chunk, long after
   * the report). `client`: who the request was for, so cost is told per client and end user too.
   */
  recordUsage(provider: ProviderRuntime, keyId: string, usage: unknown, now: number, client?: string): void {
    const tokens = totalTokens(usage);
    const cost = costOf(usage);
    const stats = provider.stats.get(keyId);
    if (!stats || (tokens === 0 && cost === 0)) return;
    if (tokens > 0) {
      stats.tokens += tokens;
      this.statsChanged();
    }
    this.events.emit('usage', { at: now, provider: provider.config.slug, keyId, tokens, cost, client });
  }

  /**
   * A stream that failed after its first byte. The request was already reported (a success: it
   * started); now its failure counts, and an error chunk acts like its status would (a 429 chunk cools).
   */
  async recordStreamFailure(provider: ProviderRuntime, keyId: string, outcome: Outcome, now: number): Promise<void> {
    const view = provider.views.get(keyId);
    if (!view) return;
    if (outcome.kind === 'cool' || outcome.kind === 'congested' || outcome.kind === 'disable' || outcome.kind === 'edge') {
      await this.apply(provider, view, outcome, now, false);
      return;
    }
    provider.stats.get(keyId)!.failures++;
    provider.totals.failures++;
    this.statsChanged();
  }

  private async cool(provider: ProviderRuntime, view: KeyView, scope: CoolScope, until: number | undefined, reason: string, now: number, strike = true): Promise<void> {
    const effective = await this.store.cool(
      { keyId: view.keyId, account: view.account, model: view.model, scope, until, reason, baseMs: this.options.cooldownMs, maxMs: this.options.maxCooldownMs, strike },
      now,
    );
    this.events.emit('cooled', { at: now, provider: provider.config.slug, keyId: view.keyId, scope, until: effective, reason });
  }

  /** A free-tier 429 for a model not named `:free`: from now on its account limits apply to it. */
  private learnFreeTier(provider: ProviderRuntime): void {
    const rt = this.buildRuntime(provider.config, true, provider);
    provider.plan = rt.plan;
    provider.views = rt.views;
  }

  emitRotation(provider: ProviderRuntime, from: string, to: string, reason: string, now: number): void {
    this.events.emit('rotated', { at: now, provider: provider.config.slug, from, to, reason });
  }

  /** Every key of a provider as the status routes show it. */
  keyStatuses(provider: ProviderRuntime, now: number): Promise<KeyStatus[]> {
    return describeKeys(this.store, provider, now);
  }

  /** Finds a key by id in any provider (admin routes). */
  findKey(keyId: string): Array<{ provider: ProviderRuntime; key: KeyConfig }> {
    const out: Array<{ provider: ProviderRuntime; key: KeyConfig }> = [];
    for (const p of this.providers.values()) {
      const key = p.keys.get(keyId);
      if (key) out.push({ provider: p, key });
    }
    return out;
  }

  async setDisabled(keyId: string, reason: string | null, now: number): Promise<void> {
    await this.store.setDisabled(keyId, reason, now);
    if (reason === null) this.events.emit('reactivated', { at: now, keyId });
    else for (const { provider } of this.findKey(keyId)) this.events.emit('disabled', { at: now, provider: provider.config.slug, keyId, reason });
  }

  async resetCooldowns(provider: ProviderRuntime | undefined, now: number): Promise<void> {
    await this.store.resetCooldowns(provider ? [...provider.views.values()] : undefined, now);
  }
}
