import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { redisConnection } from './redisConnection';
import { MemoryStore } from './memory';
import { OutageJournal, pickCounters } from './outageJournal';
import { defineScripts, type StoreScripts } from './redisScripts';
import { EXPIRY } from './rules';
import { type FairState, RedisFairState } from './fairState';
import type { StoreLog } from './snapshot';
import { gate, keyGates, REDIS_KIND, scopeGate } from './names';
import { clockMs, deadlineMs, type CoolRequest, type KeyInspection, type KeyView, type LearnedView, type LearnRequest, type PickPlan, type PickResult, type StateStore, type StoreHealth } from './types';

export interface RedisStoreOptions {
  url: string;
  /** Namespace of every key, so that several deployments share one Redis (`orche:`). */
  prefix: string;
  logger: StoreLog;
  /** Connect and command timeouts: a dead Redis must cost a request at most this long. */
  timeoutMs?: number;
  /** The clock of a merge after an outage (which deadlines are past). */
  now?: () => number;
}


const viewArgs = (views: KeyView[]) => views.flatMap((v) => [v.keyId, v.account, v.model, v.free ? '1' : '0']);
const budget = (n: number | undefined) => (n === undefined ? -1 : n);

/**
 * State in Redis, shared by every instance: each operation is one atomic Lua script (one round trip).
 * When Redis is away, requests are served from a local MemoryStore (which also learns every cooldown,
 * disabled key and account while Redis is up), /health says degraded, and the store goes back to
 * Redis as soon as ioredis reconnects. Per-key request stats stay per instance (attach is a no-op).
 */
export class RedisStore implements StateStore {
  readonly kind: StoreHealth['kind'] = 'redis';
  readonly fair: FairState;
  private readonly redis: Redis & StoreScripts;
  private readonly local = new MemoryStore();
  private readonly prefix: string;
  private readonly logger: StoreLog;
  private state: 'connecting' | 'up' | 'down' = 'connecting';
  /** Local changes made while Redis was away, merged into it when it returns. */
  private readonly journal = new OutageJournal();
  private merging = false;
  /** Pick ids: this instance, then a sequence. */
  private readonly instance = randomBytes(6).toString('hex');
  private picks = 0;
  private readonly now: () => number;
  private lastError = 'not connected yet';
  private closed = false;
  private recheck: NodeJS.Timeout | undefined;

  constructor(opts: RedisStoreOptions) {
    this.now = opts.now ?? Date.now;
    this.prefix = opts.prefix;
    this.logger = opts.logger;
    this.redis = defineScripts(redisConnection(opts.url, { name: `${opts.prefix}state`, timeoutMs: opts.timeoutMs }));
    this.fair = new RedisFairState(this.redis, this.prefix, this.instance);
    this.redis.on('ready', () => this.markUp());
    this.redis.on('error', (err: Error) => this.markDown(err.message));
    this.redis.on('close', () => this.markDown('connection closed'));
  }

  /**
   * Redis answers again. What changed locally meanwhile is merged first (docs/design.md#while-redis-is-away); requests go on
   * being served from the local state until that is done, then from Redis.
   */
  private markUp(): void {
    if (this.closed || this.state === 'up' || this.merging) return;
    if (this.journal.size === 0) return this.becomeUp(0);
    this.merging = true;
    this.journal.mergeInto(this.redis, this.prefix, this.now()).then(
      (merged) => {
        this.merging = false;
        // Changes recorded during the merge's last await are merged by the next attempt.
        if (this.journal.size > 0) return this.markUp();
        this.becomeUp(merged);
      },
      (err: Error) => {
        this.merging = false;
        this.lastError = `merging local changes: ${err.message}`;
        this.scheduleRecheck();
      },
    );
  }

  private becomeUp(merged: number): void {
    if (this.closed) return;
    const dropped = this.journal.dropped;
    this.journal.dropped = 0;
    if (this.state === 'down') this.logger.info('redis is back: shared state again', { store: 'redis', merged_changes: merged, ...(dropped ? { dropped_changes: dropped } : {}) });
    else this.logger.info('redis connected', { store: 'redis', prefix: this.prefix, ...(merged ? { merged_changes: merged } : {}) });
    this.state = 'up';
  }

  /** Logged once per outage, not once per failed command or reconnect attempt. */
  private markDown(reason: string): void {
    if (this.closed) return;
    this.lastError = reason;
    if (this.state === 'down') return;
    this.state = 'down';
    this.logger.warn('redis unavailable: serving from local state until it returns', { store: 'redis', error: reason });
    this.scheduleRecheck();
  }

  /**
   * A command can fail (a timeout under load) while the connection stays up; then no reconnect, and
   * so no 'ready', will ever mark the store up again. A PING every half second does.
   */
  private scheduleRecheck(): void {
    if (this.recheck || this.closed) return;
    this.recheck = setTimeout(() => {
      this.recheck = undefined;
      if (this.closed || this.state === 'up') return;
      if (this.redis.status !== 'ready') return this.scheduleRecheck(); // reconnecting: 'ready' will mark it up
      this.redis.ping().then(
        () => this.markUp(),
        () => this.scheduleRecheck(),
      );
    }, 500);
    this.recheck.unref();
  }

  /** Resolves true once connected (start-up, tests); false after `timeoutMs` without Redis. */
  async connected(timeoutMs = 2000): Promise<boolean> {
    if (this.state === 'up') return true;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.redis.on('ready', onReady);
    });
  }

  /** Redis when it is up, else (or when the call fails) the local store. */
  private async shared<T>(remote: () => Promise<T>, local: (sent: boolean) => Promise<T>): Promise<T> {
    if (this.state !== 'up') return local(false);
    try {
      return await remote();
    } catch (err) {
      this.markDown((err as Error).message);
      // `sent`: the command went to Redis and may have run there (a timeout, a dropped connection).
      return local(true);
    }
  }

  async pick(plan: PickPlan, now: number, avoid: readonly string[] = []): Promise<PickResult> {
    const id = `${this.instance}:${++this.picks}`;
    return this.shared(
      async () => {
        const r = await this.redis.orchePick(
          this.prefix, clockMs(now), plan.provider, plan.model, plan.free ? '1' : '0', plan.rotating,
          budget(plan.keyRpm), budget(plan.keyRpd), budget(plan.accountRpm), budget(plan.accountRpd),
          plan.trialTtlMs, plan.reserves, id,
          avoid.length, ...avoid, ...plan.candidates.flatMap((c) => [c.keyId, c.account]),
        );
        if (r[0] === 1) return r[4] === 1 ? { keyId: r[1], index: r[2], trial: r[3] === 1, learned: true } : { keyId: r[1], index: r[2], trial: r[3] === 1 };
        const retryAt = Number(r[1]);
        return { keyId: null, retryAt: retryAt < 0 ? null : retryAt, reason: r[2] };
      },
      async (sent) => {
        const r = await this.local.pick(plan, now, avoid);
        if (r.keyId !== null) {
          const account = this.local.resolve(plan.candidates[r.index].account, now);
          // The budget counters, and the windows of the learned limits this instance knows for the key's gates.
          const counters = [
            ...pickCounters(r.keyId, account, plan.model, plan.free, clockMs(now)),
            ...this.local.learnedCounts({ keyId: r.keyId, account, model: plan.model, free: plan.free }, clockMs(now), 1),
          ];
          if (sent) this.journal.record({ kind: 'pick', id, counters });
          else this.journal.count(counters);
        }
        return r;
      },
    );
  }

  async cool(req: CoolRequest, now: number): Promise<number> {
    const local = await this.local.cool(req, now);
    return this.shared(
      async () =>
        Number(
          await this.redis.orcheCool(this.prefix, clockMs(now), req.keyId, req.account, req.model, req.scope, req.until === undefined ? -1 : deadlineMs(req.until), req.reason, req.baseMs, req.maxMs, req.strike === false ? 0 : 1),
        ),
      async () => {
        const cooled = scopeGate(req.scope, req.keyId, this.local.resolve(req.account, now), req.model);
        this.journal.record({ kind: 'cool', req: { ...req, until: local }, gate: cooled, now: clockMs(now) });
        return local;
      },
    );
  }

  async learnLimit(req: LearnRequest, now: number): Promise<void> {
    await this.local.learnLimit(req, now);
    await this.shared(
      async () => void (await this.redis.orcheLearn(this.prefix, clockMs(now), req.keyId, req.account, req.model, req.scope, req.limit, req.windowMs, deadlineMs(req.resetAt), req.source, '0', req.lengthen ? '1' : '0', req.used ?? -1)),
      // Merged when Redis returns; if the lesson did reach Redis, merging it again changes nothing (the same learned_at).
      async () => this.journal.record({ kind: 'learn', req: { ...req, resetAt: deadlineMs(req.resetAt) }, at: clockMs(now) }),
    );
  }

  async refund(view: KeyView, pickedAt: number): Promise<void> {
    await this.local.refund(view, pickedAt);
    await this.shared(
      async () => void (await this.redis.orcheRefund(this.prefix, clockMs(pickedAt), ...viewArgs([view]))),
      // Taken off the outage's counts; a refund that may have run in Redis is not (counting one too many is the safe side).
      async (sent) => {
        if (!sent) this.journal.count(this.local.learnedCounts(view, clockMs(pickedAt), -1));
      },
    );
  }

  async congest(model: string, until: number, reason: string, now: number): Promise<void> {
    await this.local.congest(model, until, reason, now);
    await this.shared(
      async () => void (await this.redis.orcheCongest(this.prefix, clockMs(now), gate.model(model), deadlineMs(until), reason)),
      async () => this.journal.record({ kind: 'hold', gate: gate.model(model), until: deadlineMs(until), reason, now: clockMs(now) }),
    );
  }

  async holdHost(until: number, reason: string, now: number): Promise<void> {
    await this.local.holdHost(until, reason, now);
    await this.shared(
      async () => void (await this.redis.orcheCongest(this.prefix, clockMs(now), gate.host, deadlineMs(until), reason)),
      async () => this.journal.record({ kind: 'hold', gate: gate.host, until: deadlineMs(until), reason, now: clockMs(now) }),
    );
  }

  async hostHeldUntil(now: number): Promise<number> {
    return this.shared(
      async () => {
        const until = Number((await this.redis.hget(`${this.prefix}${REDIS_KIND.gate}${gate.host}`, 'u')) ?? 0);
        return until > now ? until : 0;
      },
      () => this.local.hostHeldUntil(now),
    );
  }

  async succeed(view: KeyView, now: number): Promise<void> {
    await this.local.succeed(view, now);
    await this.shared(
      async () => void (await this.redis.orcheSucceed(this.prefix, clockMs(now), ...viewArgs([view]))),
      async () => this.journal.record({ kind: 'succeed', view, now: clockMs(now) }),
    );
  }

  async endTrial(view: KeyView, now: number): Promise<void> {
    await this.local.endTrial(view, now);
    await this.shared(async () => void (await this.redis.orcheEndTrial(this.prefix, clockMs(now), ...viewArgs([view]))), async () => {});
  }

  async setDisabled(keyId: string, reason: string | null, now: number): Promise<void> {
    await this.local.setDisabled(keyId, reason, now);
    const p = this.prefix;
    // A reactivation is kept too ('' and its time): a merge after an outage needs the later action.
    const entry = `${reason ?? ''}@${clockMs(now)}`;
    await this.shared(
      async () =>
        void (reason === null
          ? await this.redis.multi().set(`${p}${REDIS_KIND.disabled}${keyId}`, entry, 'PX', EXPIRY.disabledMs).del(`${p}${REDIS_KIND.gate}${gate.key(keyId)}`, `${p}${REDIS_KIND.strikes}${keyId}`).exec()
          : await this.redis.set(`${p}${REDIS_KIND.disabled}${keyId}`, entry, 'PX', EXPIRY.disabledMs)),
      async () => {
        // A reactivation clears the key's own gate: its cooldowns recorded before it are not merged.
        if (reason === null) this.journal.forget(new Set([gate.key(keyId)]));
        this.journal.record({ kind: 'disabled', keyId, reason, at: clockMs(now) });
      },
    );
  }

  async learnAccount(account: string, learned: string, now: number): Promise<void> {
    if (account === learned) return;
    await this.local.learnAccount(account, learned, now);
    await this.shared(
      async () => void (await this.redis.set(`${this.prefix}${REDIS_KIND.account}${account}`, `${learned}@${clockMs(now)}`, 'PX', EXPIRY.accountMs)),
      async () => this.journal.record({ kind: 'account', account, learned, at: clockMs(now) }),
    );
  }

  async resetCooldowns(views: KeyView[] | undefined, now: number): Promise<void> {
    // The gates it clears, as the local store resolves them (before the reset, which keeps aliases).
    const cleared = views && new Set(views.flatMap((v) => [...keyGates(v.keyId, this.local.resolve(v.account, now), v.model, v.free), gate.model(v.model)]));
    await this.local.resetCooldowns(views, now);
    await this.shared(
      async () => {
        if (views) {
          await this.redis.orcheReset(this.prefix, clockMs(now), ...viewArgs(views));
          return;
        }
        for (const kind of [REDIS_KIND.gate, REDIS_KIND.strikes]) {
          // SCAN, not KEYS: never block a Redis that other deployments share.
          for await (const batch of this.redis.scanStream({ match: `${globEscape(this.prefix)}${kind}*`, count: 500 }) as AsyncIterable<string[]>) {
            if (batch.length > 0) await this.redis.unlink(...batch);
          }
        }
      },
      // Not replayed when Redis returns, but this instance's own earlier changes to those gates are dropped.
      async () => this.journal.forget(cleared ?? 'all'),
    );
  }

  async congestedUntil(model: string, now: number): Promise<number> {
    return this.shared(
      async () => {
        const until = Number((await this.redis.hget(`${this.prefix}${REDIS_KIND.gate}${gate.model(model)}`, 'u')) ?? 0);
        return until > now ? until : 0;
      },
      () => this.local.congestedUntil(model, now),
    );
  }

  async inspect(views: KeyView[], now: number): Promise<KeyInspection[]> {
    if (views.length === 0) return [];
    return this.shared(
      async () =>
        (await this.redis.orcheInspect(this.prefix, clockMs(now), ...viewArgs(views))).map(([disabled, until, reason, account, recovering, minuteCount, dayCount, learned]) => ({
          learned: learnedViews(learned),
          disabled: disabled === '' ? null : disabled,
          cooldownUntil: Number(until),
          cooldownReason: reason === '' ? null : reason,
          account,
          recovering: recovering === 1,
          minuteCount,
          dayCount,
        })),
      () => this.local.inspect(views, now),
    );
  }

  /** The pool's per-key stats stay per instance: nothing to save or restore here. */
  attach(): () => void {
    return () => {};
  }

  /** Not ok while serving from the local state (degraded); requests are served either way. */
  health(): StoreHealth {
    if (this.state === 'up') return { kind: this.kind, ok: true };
    return { kind: this.kind, ok: false, detail: this.merging ? `merging ${this.journal.size} local changes into redis` : this.lastError };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.recheck) clearTimeout(this.recheck);
    this.redis.disconnect();
  }
}

/** The flat list INSPECT returns per key: gate, windowMs, limit, learnedAt, source, used, anchor per limit. */
function learnedViews(flat: string[]): LearnedView[] {
  const out: LearnedView[] = [];
  for (let i = 0; i + 6 < flat.length; i += 7) {
    out.push({ gate: flat[i], windowMs: Number(flat[i + 1]), limit: Number(flat[i + 2]), learnedAt: Number(flat[i + 3]), source: flat[i + 4], used: Number(flat[i + 5]), anchor: Number(flat[i + 6]) });
  }
  return out;
}

/** A prefix is literal text; SCAN's MATCH would read `*`, `?` and `[` in it as a pattern. */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
