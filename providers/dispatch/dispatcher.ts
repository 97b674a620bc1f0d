import type { RotationConfig } from '../../config';
import { AllKeysRateLimitedError, OrcheError } from '../errors';
import type { KeyPool, ProviderRuntime } from '../keys/keyPool';
import { type Allowance, nextStep, reportedOutcome, sharedOutcome, startAllowance } from './nextStep';
import type { Outcome } from '../limits/rateLimit';
import { MINUTE_MS } from '../limits/windows';
import { type RoomClock, WaitEnded, WaitRoom } from './waitRoom';
import { ProviderPacer } from './roomPacer';
import { splitFairKey } from './requestClient';
import { type LeftKey, leftAfterCall, leftForFallBack, rotationTo } from './rotationReason';
import { RoomTurn } from './roomTurn';
import type { Cancel } from './cancel';

export interface AttemptContext {
  provider: ProviderRuntime;
  keyId: string;
  key: string;
  signal?: Cancel;
  /** This attempt's timeout: ORCHE_REQUEST_TIMEOUT_MS, or less when the request's deadline is nearer. */
  timeoutMs: number;
}

/** One upstream call, classified. `value` is what the caller gets back on success. */
export type Attempt<T> = (ctx: AttemptContext) => Promise<{ outcome: Outcome; value?: T }>;

export interface DispatchResult<T> {
  value: T;
  provider: ProviderRuntime;
  keyId: string;
  attempts: number;
  latencyMs: number;
  /** The request carried a client's routing choice: what its stream ends with changes no shared state either. */
  isolated?: boolean;
  /** Who the request was for (requestClient.ts's fairKey): a stream's usage, known at its end, is told for them. */
  client: string;
}

export interface RunOptions<T> {
  /** The request carries a client's routing choice: its answers change no shared state (sharedOutcome). */
  isolated?: boolean;
  /**
   * Called with the answer once, and run resolves with the same result after the key's state and
   * counters took it in. With a store whose state is in this process it is called before that, as
   * soon as the answer is known. A route writes its response here.
   */
  deliver?: (answer: DispatchResult<T>) => void;
}

export interface DispatchDeps {
  now: () => number;
  sleep: (ms: number, signal?: Cancel) => Promise<void>;
  random: () => number;
  /**
   * Cancellable timers for the wait rooms (real, unref'd, in the server). Without them the rooms
   * wait with `sleep`, so a fake clock that `sleep` advances drives them too.
   */
  timers?: Pick<RoomClock, 'setTimer' | 'clearTimer'>;
  /** Requests waiting per provider before one fails at once (ORCHE_MAX_QUEUE); default 1000. */
  maxQueue?: number;
  /** The window the served counts of fair release count in (ORCHE_MINUTE_MS); default a minute. */
  minuteMs?: number;
}

/** The client went away while we were working for it. */
export class ClientGoneError extends OrcheError {
  constructor() {
    super(499, 'client_closed_request', 'The client closed the request');
  }
}

/**
 * The retry loop: pick a key, make one call, report the outcome; what comes next (answer, rotate,
 * back off, wait for the soonest recovery, fall back to another provider, fail) is nextStep's pure
 * decision (docs/design.md#next-step). This loop only does the I/O each step names. A wait happens in the
 * provider's wait room (waitRoom.ts): in line, clients in turn, released one pick at a time; the
 * request's turn there is turn.ts's pure decision too, and the rotation's reasons rotationReason.ts's.
 */
export class Dispatcher {
  /** Requests waiting for a key, per provider (paced recovery and fair sharing, docs/design.md#pacing-and-fairness). */
  private readonly rooms = new Map<string, WaitRoom>();
  private readonly pacers = new Map<string, ProviderPacer>();
  private readonly roomClock: RoomClock;

  constructor(
    private readonly pool: KeyPool,
    private readonly rotation: RotationConfig,
    private readonly deps: DispatchDeps,
  ) {
    const sleepTimers: RoomClock['setTimer'] = (fn, ms) => {
      const token = { cancelled: false };
      void deps.sleep(ms).then(() => {
        if (!token.cancelled) fn();
      });
      return token;
    };
    this.roomClock = {
      now: deps.now,
      setTimer: deps.timers?.setTimer ?? sleepTimers,
      clearTimer: deps.timers?.clearTimer ?? ((t) => void ((t as { cancelled: boolean }).cancelled = true)),
    };
  }

  /** The wait room of a provider. */
  room(provider: ProviderRuntime): WaitRoom {
    const slug = provider.config.slug;
    let r = this.rooms.get(slug);
    if (!r) {
      r = new WaitRoom(this.deps.maxQueue ?? 1000, this.roomClock, this.pacer(provider));
      this.rooms.set(slug, r);
    }
    return r;
  }

  /** The pacer of a provider's wait room, which also counts what each client was served (docs/design.md#pacing-and-fairness). */
  private pacer(provider: ProviderRuntime): ProviderPacer {
    const slug = provider.config.slug;
    let p = this.pacers.get(slug);
    if (!p) {
      p = new ProviderPacer(this.pool, () => this.pool.get(slug) ?? provider, this.deps.minuteMs ?? MINUTE_MS);
      this.pacers.set(slug, p);
    }
    return p;
  }

  /** Something may have freed keys of every provider (an admin reset): waiting requests try again now. */
  kickAll(): void {
    for (const r of this.rooms.values()) r.kick();
  }

  /** The provider's fallback when it has keys and was not visited in this request, else null. */
  private fallbackOf(provider: ProviderRuntime, visited: Set<string>): string | null {
    const slug = provider.config.fallback;
    if (!slug || visited.has(slug)) return null;
    const fb = this.pool.get(slug);
    return fb && fb.keys.size > 0 ? slug : null;
  }

  /**
   * `client`: who the request is for (requestClient.ts's fairKey), for fair turns in the wait room.
   * `opts`: whether the request is isolated, and where its answer is delivered first (RunOptions).
   */
  async run<T>(slug: string, attempt: Attempt<T>, signal?: Cancel, client = 'anonymous', opts: RunOptions<T> = {}): Promise<DispatchResult<T>> {
    const isolated = opts.isolated === true;
    const { now, sleep } = this.deps;
    const r = this.rotation;
    const started = now();
    let provider = this.pool.get(slug)!;
    const requested = provider.config.slug;
    const who = splitFairKey(client);
    const visited = new Set([slug]);
    let left: LeftKey | null = null;
    // Keys that failed this request (5xx, timeout): another usable key is preferred for the retry.
    // Each is one retry: the backoff doubles with their number.
    const failed: string[] = [];
    let last: Outcome | null = null;
    // Fixed at the start; `now`, `attempts` and `retries` are brought up to date for each step.
    const a = startAllowance(started, r, this.deps.random);
    const allowance = (): Allowance => {
      a.now = now();
      a.retries = failed.length;
      return a;
    };

    let lastRetryAt = 0;
    const waitFailed = (err: unknown, p: ProviderRuntime): Error => {
      if (!(err instanceof WaitEnded)) return err as Error;
      if (err.why === 'aborted') return new ClientGoneError();
      // The paced schedule shows it cannot go before its deadline: told now, with when it could.
      if (err.why === 'hopeless') return new AllKeysRateLimitedError(p.config.slug, Math.max(1000, (err.at ?? now()) - now()), `no turn within ORCHE_MAX_WAIT_MS (${r.maxWaitMs} ms)`);
      return new AllKeysRateLimitedError(p.config.slug, Math.max(1000, lastRetryAt - now()), err.why === 'full' ? 'too many requests waiting' : 'cooling');
    };
    const turn = new RoomTurn(() => this.room(provider), client, a.waitUntil, signal, (err) => waitFailed(err, provider));

    try {
      for (;;) {
        if (signal?.aborted) throw new ClientGoneError();
        let step = nextStep({ kind: 'start', provider: provider.config.slug, configured: provider.keys.size > 0, fallback: this.fallbackOf(provider, visited) }, allowance());
        let pickedKey: string | null = null;
        let answer: DispatchResult<T> | undefined;
        const room = this.room(provider);
        if (step.kind === 'pick') {
          const queued = turn.follow({ kind: 'pick_due', first: a.attempts === 0, busy: room.busy });
          if (queued) {
            await queued;
            continue;
          }
          const picking = this.pool.pick(provider, now(), failed);
          const pick = picking instanceof Promise ? await picking : picking;
          if (pick.keyId === null) {
            if (pick.retryAt !== null) lastRetryAt = pick.retryAt;
            step = nextStep({ kind: 'no_key', provider: provider.config.slug, requested, pick, fallback: this.fallbackOf(provider, visited), last }, allowance());
          } else {
            // Served for this client in this window: the least served goes first (docs/design.md#pacing-and-fairness). A
            // request from the line waits for the count, so the next release sees it. Not counted while nobody can need it.
            const counted = room.countsServed ? this.pacer(provider).countServed(who.client, who.user, now()).catch(() => {}) : undefined;
            const used = turn.follow({ kind: 'picked' }, counted);
            if (used) await used;
            pickedKey = pick.keyId;
            const rotation = rotationTo(left, pick.keyId);
            if (rotation) this.pool.emitRotation(provider, rotation.from, rotation.to, rotation.reason, now());
            a.attempts++;
            const key = this.pool.secret(provider, pick.keyId);
            const callStart = now();
            const result = await attempt({ provider, keyId: pick.keyId, key, signal, timeoutMs: step.timeoutMs });
            const end = now();
            const gone = signal?.aborted === true;
            const shared = sharedOutcome(result.outcome, isolated);
            if (gone) {
              await this.pool.report(provider, pick.keyId, reportedOutcome(shared, true), end - callStart, end, pick, client);
              throw new ClientGoneError();
            }
            last = result.outcome;
            // What comes next is decided by the outcome alone (nextStep is pure). Where the store keeps its
            // state in this process (it picks synchronously), recording the answer is bookkeeping no
            // client waits for: the answer goes out first (issue 21). A shared store's writes (Redis)
            // stay before it: delivering first there cost ~10 % CPU at 50 connections, as each
            // connection's next request overlapped the last one's round trips.
            step = nextStep({ kind: 'outcome', provider: provider.config.slug, requested, outcome: last, fallback: this.fallbackOf(provider, visited) }, allowance());
            if (step.kind === 'answer') answer = { value: result.value as T, provider, keyId: pick.keyId, attempts: a.attempts, latencyMs: now() - started, isolated, client };
            const first = answer !== undefined && this.pool.inProcess;
            if (first) opts.deliver?.(answer!);
            await this.pool.report(provider, pick.keyId, shared, end - callStart, end, pick, client);
            if (answer && !first) opts.deliver?.(answer);
            turn.follow({ kind: 'called', outcome: shared, at: end, trial: pick.trial });
            left = leftAfterCall(left, pick.keyId, last);
          }
        }

        switch (step.kind) {
          case 'answer':
            return answer!;
          case 'pick':
            continue;
          case 'back_off':
            failed.push(pickedKey!);
            await sleep(step.delayMs, signal);
            continue;
          case 'wait':
            // In line: the room lets one request through at a time at the soonest recovery (or sooner when kicked).
            await turn.follow({ kind: 'wait', at: now() + step.delayMs });
            continue;
          case 'fall_back':
            turn.follow({ kind: 'fall_back' });
            left = leftForFallBack(left, pickedKey, step.reason);
            visited.add(step.to);
            provider = this.pool.get(step.to)!;
            continue;
          case 'fail':
            throw step.error;
        }
      }
    } finally {
      turn.follow({ kind: 'end' });
    }
  }
}
