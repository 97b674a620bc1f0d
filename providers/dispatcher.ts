import type { RotationConfig } from '../config';
import { backoffDelay } from './backoff';
import {
  AllKeysRateLimitedError,
  NoUsableKeysError,
  OrcheError,
  UpstreamError,
  UpstreamRateLimitedError,
  UpstreamRejectedError,
  UpstreamTimeoutError,
} from './errors';
import type { KeyPool, ProviderRuntime } from './keyPool';
import { lessonOf } from './learnedLimit';
import type { Outcome } from './rateLimit';
import { fairKey, requestClient } from './requestClient';
import { type RoomClock, type Ticket, WaitEnded, WaitRoom } from './waitRoom';

export interface AttemptContext {
  provider: ProviderRuntime;
  keyId: string;
  key: string;
  signal?: AbortSignal;
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
}

export interface DispatchDeps {
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
  /**
   * Cancellable timers for the wait rooms (real, unref'd, in the server). Without them the rooms
   * wait with `sleep`, so a fake clock that `sleep` advances drives them too.
   */
  timers?: Pick<RoomClock, 'setTimer' | 'clearTimer'>;
  /** Requests waiting per provider before one fails at once (ORCHE_MAX_QUEUE); default 1000. */
  maxQueue?: number;
}

/** The client went away while we were working for it. */
export class ClientGoneError extends OrcheError {
  constructor() {
    super(499, 'client_closed_request', 'The client closed the request');
  }
}

/**
 * The retry loop: pick a key, make one call, report the outcome, then answer, rotate at once,
 * back off, wait for the soonest recovery, or fall back to another provider (SPEC §4).
 */
export class Dispatcher {
  /** Requests waiting for a key, per provider (paced recovery and fair sharing, SPEC §7). */
  private readonly rooms = new Map<string, WaitRoom>();
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
      r = new WaitRoom(this.deps.maxQueue ?? 1000, this.roomClock);
      this.rooms.set(slug, r);
    }
    return r;
  }

  /** Something may have freed keys of every provider (an admin reset): waiting requests try again now. */
  kickAll(): void {
    for (const r of this.rooms.values()) r.kick();
  }

  private fallbackOf(provider: ProviderRuntime, visited: Set<string>): ProviderRuntime | undefined {
    const slug = provider.config.fallback;
    if (!slug || visited.has(slug)) return undefined;
    const fb = this.pool.get(slug);
    if (!fb || fb.keys.size === 0) return undefined;
    visited.add(slug);
    return fb;
  }

  async run<T>(slug: string, attempt: Attempt<T>, signal?: AbortSignal): Promise<DispatchResult<T>> {
    const { now, sleep, random } = this.deps;
    const started = now();
    const waitDeadline = started + this.rotation.maxWaitMs;
    const deadline = started + this.rotation.deadlineMs;
    let provider = this.pool.get(slug)!;
    const requested = provider;
    const visited = new Set([slug]);
    let attempts = 0;
    let retries = 0;
    let previous: { keyId: string; reason: string } | null = null;
    // Keys that failed this request (5xx, timeout): another usable key is preferred for the retry.
    const failed: string[] = [];
    let last: Outcome | null = null;
    const client = fairKey(requestClient.getStore());
    // The wait room's turn this request holds, and the room that let its current call through.
    let held: { room: WaitRoom; ticket: Ticket } | null = null;
    let through: WaitRoom | null = null;
    const waitUntil = Math.min(waitDeadline, deadline - 1);
    let lastRetryAt = 0;
    const waitFailed = (err: unknown, p: ProviderRuntime): Error => {
      if (!(err instanceof WaitEnded)) return err as Error;
      if (err.why === 'aborted') return new ClientGoneError();
      const wait = Math.max(1000, lastRetryAt - now());
      return new AllKeysRateLimitedError(p.config.slug, wait, err.why === 'full' ? 'too many requests waiting' : 'cooling');
    };
    try {
      while (attempts < this.rotation.maxAttempts) {
        if (signal?.aborted) throw new ClientGoneError();
        if (now() >= deadline) throw new UpstreamTimeoutError(provider.config.slug, attempts, `no answer within the request deadline of ${this.rotation.deadlineMs} ms`);
        if (provider.keys.size === 0) {
          const fb = this.fallbackOf(provider, visited);
          if (fb) {
            provider = fb;
            continue;
          }
          throw new NoUsableKeysError(provider.config.slug, true);
        }
        // A new request queues behind those already waiting for this provider: arrival order, clients in turn.
        const room = this.room(provider);
        if (held === null && attempts === 0 && room.busy) {
          try {
            held = { room, ticket: await room.join(client, waitUntil, undefined, signal) };
          } catch (err) {
            throw waitFailed(err, provider);
          }
          continue;
        }
        const t = now();
        const pick = await this.pool.pick(provider, t, failed);
        if (pick.keyId === null) {
          const fb = this.fallbackOf(provider, visited);
          if (fb) {
            if (held) held.room.leave(held.ticket);
            held = null;
            provider = fb;
            continue;
          }
          if (pick.retryAt === null) throw new NoUsableKeysError(provider.config.slug, false);
          const wait = Math.max(1, pick.retryAt - t);
          lastRetryAt = t + wait;
          if (t + wait <= waitDeadline && t + wait < deadline) {
            // Wait in line; the room wakes one request at a time at the soonest recovery (or sooner when kicked).
            try {
              if (held) await held.room.retry(held.ticket, t + wait);
              else held = { room, ticket: await room.join(client, waitUntil, t + wait, signal) };
            } catch (err) {
              held = null;
              throw waitFailed(err, provider);
            }
            continue;
          }
          if (pick.reason === 'congested') {
            throw new UpstreamRateLimitedError(provider.config.slug, wait, last && 'message' in last ? last.message : 'model congested upstream');
          }
          throw new AllKeysRateLimitedError(provider.config.slug, wait, pick.reason === 'budget' ? 'budgets spent' : 'cooling');
        }

        if (held) {
          held.room.picked(held.ticket);
          through = held.room;
          held = null;
        }
        if (previous && previous.keyId !== pick.keyId) this.pool.emitRotation(provider, previous.keyId, pick.keyId, previous.reason, t);
        attempts++;
        const key = this.pool.secret(provider, pick.keyId);
        const callStart = now();
        const timeoutMs = Math.max(1, Math.min(this.rotation.requestTimeoutMs, deadline - callStart));
        const { outcome, value } = await attempt({ provider, keyId: pick.keyId, key, signal, timeoutMs });
        const end = now();
        if (signal?.aborted) {
          await this.pool.report(provider, pick.keyId, { kind: 'client_error', status: 499, reason: 'client_gone', message: 'client went away', body: undefined }, end - callStart, end, pick.probe);
          throw new ClientGoneError();
        }
        await this.pool.report(provider, pick.keyId, outcome, end - callStart, end, pick.probe);
        if (through) {
          // A 429 that taught no limit restarts the slow start; a success widens it.
          const unknown429 = outcome.kind === 'cool' && lessonOf(outcome, end) === undefined;
          through.finished(outcome.kind === 'success' ? 'success' : unknown429 ? 'rate_limited_unknown' : 'other');
          through = null;
        }
        if (outcome.kind === 'success') {
          // A success may have opened a recovering key (its trial call): waiting requests need not wait longer.
          if (pick.probe) this.room(provider).kick();
          return { value: value as T, provider, keyId: pick.keyId, attempts, latencyMs: end - started };
        }
        last = outcome;
        previous = { keyId: pick.keyId, reason: outcome.reason };

        switch (outcome.kind) {
          case 'cool':
          case 'disable':
            continue; // the next usable key at once, no sleep
          case 'congested': {
            const fb = this.fallbackOf(provider, visited);
            if (fb) {
              previous = { keyId: pick.keyId, reason: `fallback:${outcome.reason}` };
              provider = fb;
            }
            continue; // otherwise the next pick sees the congestion and waits or fails with its hint
          }
          case 'retry':
            retries++;
            failed.push(pick.keyId);
            if (attempts < this.rotation.maxAttempts) {
              const delay = backoffDelay(retries, this.rotation.backoffBaseMs, this.rotation.backoffMaxMs, random);
              await sleep(Math.min(delay, Math.max(0, deadline - now())), signal);
            }
            continue;
          case 'client_error':
            throw new UpstreamRejectedError(provider.config.slug, outcome.status, outcome.reason, outcome.message);
        }
      }
      throw this.exhausted(requested, provider, last!, attempts);
    } finally {
      if (held) held.room.leave(held.ticket);
      if (through) through.finished('other');
    }
  }

  private exhausted(requested: ProviderRuntime, provider: ProviderRuntime, last: Outcome, attempts: number): OrcheError {
    const slug = provider.config.slug;
    switch (last.kind) {
      case 'retry':
        return last.reason === 'timeout'
          ? new UpstreamTimeoutError(slug, attempts, last.message)
          : new UpstreamError(slug, last.status, last.message, attempts);
      case 'cool': {
        const wait = Math.max(1000, (last.until ?? this.deps.now() + this.rotation.cooldownMs) - this.deps.now());
        return new AllKeysRateLimitedError(requested.config.slug, wait, `${attempts} attempts all rate-limited`);
      }
      case 'congested':
        return new UpstreamRateLimitedError(slug, Math.max(1000, (last.until ?? this.deps.now() + 5000) - this.deps.now()), last.message);
      default:
        return new UpstreamError(slug, last.status, 'message' in last ? last.message : 'upstream failure', attempts);
    }
  }
}
