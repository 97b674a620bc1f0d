import type { RotationConfig } from '../config';
import { backoffDelay } from './backoff';
import {
  AllKeysRateLimitedError,
  EdgeRateLimitedError,
  NoUsableKeysError,
  OrcheError,
  UpstreamError,
  UpstreamRateLimitedError,
  UpstreamRejectedError,
  UpstreamTimeoutError,
} from './errors';
import type { KeyPool, ProviderRuntime } from './keyPool';
import type { Outcome } from './rateLimit';

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
  constructor(
    private readonly pool: KeyPool,
    private readonly rotation: RotationConfig,
    private readonly deps: DispatchDeps,
  ) {}

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
      const t = now();
      const pick = await this.pool.pick(provider, t, failed);
      if (pick.keyId === null) {
        // An edge hold stops every provider on this host alike: a fallback would meet the same edge.
        const fb = pick.reason === 'edge' ? undefined : this.fallbackOf(provider, visited);
        if (fb) {
          provider = fb;
          continue;
        }
        if (pick.retryAt === null) throw new NoUsableKeysError(provider.config.slug, false);
        const wait = Math.max(1, pick.retryAt - t);
        if (t + wait <= waitDeadline && t + wait < deadline) {
          await sleep(wait, signal);
          continue;
        }
        if (pick.reason === 'edge') throw new EdgeRateLimitedError(provider.config.slug, wait);
        if (pick.reason === 'congested') {
          throw new UpstreamRateLimitedError(provider.config.slug, wait, last && 'message' in last ? last.message : 'model congested upstream');
        }
        throw new AllKeysRateLimitedError(provider.config.slug, wait, pick.reason === 'budget' ? 'budgets spent' : 'cooling');
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
      if (outcome.kind === 'success') {
        return { value: value as T, provider, keyId: pick.keyId, attempts, latencyMs: end - started };
      }
      last = outcome;
      previous = { keyId: pick.keyId, reason: outcome.reason };

      switch (outcome.kind) {
        case 'cool':
        case 'disable':
          continue; // the next usable key at once, no sleep
        case 'edge':
          continue; // the next pick sees the host hold: it waits for it or fails with its Retry-After
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
      case 'edge':
        return new EdgeRateLimitedError(slug, Math.max(1000, (last.until ?? this.deps.now() + 5000) - this.deps.now()));
      default:
        return new UpstreamError(slug, last.status, 'message' in last ? last.message : 'upstream failure', attempts);
    }
  }
}
