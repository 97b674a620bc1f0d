import Redis from 'ioredis';
import { MemoryStore } from './memory';
import { defineScripts, type StoreScripts } from './redisScripts';
import { EXPIRY } from './rules';
import type { StoreLog } from './snapshot';
import { clockMs, deadlineMs, gate, type CoolRequest, type KeyInspection, type KeyView, type LearnedView, type LearnRequest, type PickPlan, type PickResult, type StateStore, type StoreHealth } from './types';

export interface RedisStoreOptions {
  url: string;
  /** Namespace of every key, so that several deployments share one Redis (`orche:`). */
  prefix: string;
  logger: StoreLog;
  /** Connect and command timeouts: a dead Redis must cost a request at most this long. */
  timeoutMs?: number;
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
  private readonly redis: Redis & StoreScripts;
  private readonly local = new MemoryStore();
  private readonly prefix: string;
  private readonly logger: StoreLog;
  private state: 'connecting' | 'up' | 'down' = 'connecting';
  private lastError = 'not connected yet';
  private closed = false;
  private recheck: NodeJS.Timeout | undefined;

  constructor(opts: RedisStoreOptions) {
    this.prefix = opts.prefix;
    this.logger = opts.logger;
    const timeout = opts.timeoutMs ?? 1000;
    this.redis = defineScripts(
      new Redis(opts.url, {
        connectTimeout: timeout,
        commandTimeout: timeout,
        // ioredis waits this long on close for a socket that already died; do not hold shutdown.
        disconnectTimeout: timeout,
        // Fail at once while disconnected instead of queueing: the local state answers meanwhile.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        // Reconnect quickly and forever: rejoining within a second or so of Redis coming back.
        retryStrategy: (times) => Math.min(100 * times, 1000),
      }),
    );
    this.redis.on('ready', () => this.markUp());
    this.redis.on('error', (err: Error) => this.markDown(err.message));
    this.redis.on('close', () => this.markDown('connection closed'));
  }

  private markUp(): void {
    if (this.closed) return;
    if (this.state === 'down') this.logger.info('redis is back: shared state again', { store: 'redis' });
    else this.logger.info('redis connected', { store: 'redis', prefix: this.prefix });
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
  private async shared<T>(remote: () => Promise<T>, local: () => Promise<T>): Promise<T> {
    if (this.state !== 'up') return local();
    try {
      return await remote();
    } catch (err) {
      this.markDown((err as Error).message);
      return local();
    }
  }

  async pick(plan: PickPlan, now: number, avoid: readonly string[] = []): Promise<PickResult> {
    return this.shared(
      async () => {
        const r = await this.redis.orchePick(
          this.prefix, clockMs(now), plan.provider, plan.model, plan.free ? '1' : '0', plan.rotating,
          budget(plan.keyRpm), budget(plan.keyRpd), budget(plan.accountRpm), budget(plan.accountRpd),
          plan.probeTtlMs, plan.reserves,
          avoid.length, ...avoid, ...plan.candidates.flatMap((c) => [c.keyId, c.account]),
        );
        if (r[0] === 1) return { keyId: r[1], index: r[2], probe: r[3] === 1 };
        const retryAt = Number(r[1]);
        return { keyId: null, retryAt: retryAt < 0 ? null : retryAt, reason: r[2] };
      },
      () => this.local.pick(plan, now, avoid),
    );
  }

  async cool(req: CoolRequest, now: number): Promise<number> {
    const local = await this.local.cool(req, now);
    return this.shared(
      async () =>
        Number(
          await this.redis.orcheCool(this.prefix, clockMs(now), req.keyId, req.account, req.model, req.scope, req.until === undefined ? -1 : deadlineMs(req.until), req.reason, req.baseMs, req.maxMs, req.strike === false ? 0 : 1),
        ),
      async () => local,
    );
  }

  async learnLimit(req: LearnRequest, now: number): Promise<void> {
    await this.local.learnLimit(req, now);
    await this.shared(
      async () => void (await this.redis.orcheLearn(this.prefix, clockMs(now), req.keyId, req.account, req.model, req.scope, req.limit, req.windowMs, deadlineMs(req.resetAt), req.source)),
      async () => {},
    );
  }

  async refund(view: KeyView, pickedAt: number): Promise<void> {
    await this.local.refund(view, pickedAt);
    await this.shared(async () => void (await this.redis.orcheRefund(this.prefix, clockMs(pickedAt), ...viewArgs([view]))), async () => {});
  }

  async congest(model: string, until: number, reason: string, now: number): Promise<void> {
    await this.local.congest(model, until, reason, now);
    await this.shared(async () => void (await this.redis.orcheCongest(this.prefix, clockMs(now), gate.model(model), deadlineMs(until), reason)), async () => {});
  }

  async holdHost(until: number, reason: string, now: number): Promise<void> {
    await this.local.holdHost(until, reason, now);
    await this.shared(async () => void (await this.redis.orcheCongest(this.prefix, clockMs(now), gate.host, deadlineMs(until), reason)), async () => {});
  }

  async hostHeldUntil(now: number): Promise<number> {
    return this.shared(
      async () => {
        const until = Number((await this.redis.hget(`${this.prefix}g:${gate.host}`, 'u')) ?? 0);
        return until > now ? until : 0;
      },
      () => this.local.hostHeldUntil(now),
    );
  }

  async succeed(view: KeyView, now: number): Promise<void> {
    await this.local.succeed(view, now);
    await this.shared(async () => void (await this.redis.orcheSucceed(this.prefix, clockMs(now), ...viewArgs([view]))), async () => {});
  }

  async release(view: KeyView, now: number): Promise<void> {
    await this.local.release(view, now);
    await this.shared(async () => void (await this.redis.orcheRelease(this.prefix, clockMs(now), ...viewArgs([view]))), async () => {});
  }

  async setDisabled(keyId: string, reason: string | null, now: number): Promise<void> {
    await this.local.setDisabled(keyId, reason, now);
    const p = this.prefix;
    // A reactivation is kept too ('' and its time): a merge after an outage needs the later action.
    const entry = `${reason ?? ''}@${clockMs(now)}`;
    await this.shared(
      async () =>
        void (reason === null
          ? await this.redis.multi().set(`${p}d:${keyId}`, entry, 'PX', EXPIRY.disabledMs).del(`${p}g:k:${keyId}`, `${p}s:${keyId}`).exec()
          : await this.redis.set(`${p}d:${keyId}`, entry, 'PX', EXPIRY.disabledMs)),
      async () => {},
    );
  }

  async learnAccount(account: string, learned: string, now: number): Promise<void> {
    if (account === learned) return;
    await this.local.learnAccount(account, learned, now);
    await this.shared(async () => void (await this.redis.set(`${this.prefix}al:${account}`, `${learned}@${clockMs(now)}`, 'PX', EXPIRY.accountMs)), async () => {});
  }

  async resetCooldowns(views: KeyView[] | undefined, now: number): Promise<void> {
    await this.local.resetCooldowns(views, now);
    await this.shared(
      async () => {
        if (views) {
          await this.redis.orcheReset(this.prefix, clockMs(now), ...viewArgs(views));
          return;
        }
        for (const kind of ['g:', 's:']) {
          // SCAN, not KEYS: never block a Redis that other deployments share.
          for await (const batch of this.redis.scanStream({ match: `${globEscape(this.prefix)}${kind}*`, count: 500 }) as AsyncIterable<string[]>) {
            if (batch.length > 0) await this.redis.unlink(...batch);
          }
        }
      },
      async () => {},
    );
  }

  async congestedUntil(model: string, now: number): Promise<number> {
    return this.shared(
      async () => {
        const until = Number((await this.redis.hget(`${this.prefix}g:c:${model}`, 'u')) ?? 0);
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

  health(): StoreHealth {
    return this.state === 'up' ? { kind: this.kind, ok: true } : { kind: this.kind, ok: false, detail: this.lastError };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.recheck) clearTimeout(this.recheck);
    this.redis.disconnect();
  }
}

/** The flat list INSPECT returns per key: gate, windowMs, limit, learnedAt, source, used per limit. */
function learnedViews(flat: string[]): LearnedView[] {
  const out: LearnedView[] = [];
  for (let i = 0; i + 5 < flat.length; i += 6) {
    out.push({ gate: flat[i], windowMs: Number(flat[i + 1]), limit: Number(flat[i + 2]), learnedAt: Number(flat[i + 3]), source: flat[i + 4], used: Number(flat[i + 5]) });
  }
  return out;
}

/** A prefix is literal text; SCAN's MATCH would read `*`, `?` and `[` in it as a pattern. */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
