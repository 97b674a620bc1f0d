import type { RotationConfig } from '../config';
import { OrcheError } from './errors';
import type { KeyPool, ProviderRuntime } from './keyPool';
import { type Budget, nextStep, reportedOutcome } from './nextStep';
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
 * The retry loop: pick a key, make one call, report the outcome; what comes next (answer, rotate,
 * back off, wait for the soonest recovery, fall back to another provider, fail) is nextStep's pure
 * decision (SPEC §4, §7). This loop only does the I/O each step names.
 */
export class Dispatcher {
  constructor(
    private readonly pool: KeyPool,
    private readonly rotation: RotationConfig,
    private readonly deps: DispatchDeps,
  ) {}

  /** The provider's fallback when it has keys and was not visited in this request, else null. */
  private fallbackOf(provider: ProviderRuntime, visited: Set<string>): string | null {
    const slug = provider.config.fallback;
    if (!slug || visited.has(slug)) return null;
    const fb = this.pool.get(slug);
    return fb && fb.keys.size > 0 ? slug : null;
  }

  async run<T>(slug: string, attempt: Attempt<T>, signal?: AbortSignal): Promise<DispatchResult<T>> {
    const { now, sleep } = this.deps;
    const r = this.rotation;
    const started = now();
    let provider = this.pool.get(slug)!;
    const requested = provider.config.slug;
    const visited = new Set([slug]);
    let attempts = 0;
    let retries = 0;
    let previous: { keyId: string; reason: string } | null = null;
    // Keys that failed this request (5xx, timeout): another usable key is preferred for the retry.
    const failed: string[] = [];
    let last: Outcome | null = null;
    const budget = (): Budget => ({
      now: now(),
      attempts,
      maxAttempts: r.maxAttempts,
      retries,
      waitDeadline: started + r.maxWaitMs,
      deadline: started + r.deadlineMs,
      deadlineMs: r.deadlineMs,
      backoffBaseMs: r.backoffBaseMs,
      backoffMaxMs: r.backoffMaxMs,
      cooldownMs: r.cooldownMs,
      random: this.deps.random,
    });

    for (;;) {
      if (signal?.aborted) throw new ClientGoneError();
      let step = nextStep({ kind: 'start', provider: provider.config.slug, configured: provider.keys.size > 0, fallback: this.fallbackOf(provider, visited) }, budget());
      let value: T | undefined;
      let pickedKey: string | null = null;
      if (step.kind === 'pick') {
        const pick = await this.pool.pick(provider, now(), failed);
        if (pick.keyId === null) {
          step = nextStep({ kind: 'no_key', provider: provider.config.slug, requested, pick, fallback: this.fallbackOf(provider, visited), last }, budget());
        } else {
          pickedKey = pick.keyId;
          if (previous && previous.keyId !== pick.keyId) this.pool.emitRotation(provider, previous.keyId, pick.keyId, previous.reason, now());
          attempts++;
          const key = this.pool.secret(provider, pick.keyId);
          const callStart = now();
          const timeoutMs = Math.max(1, Math.min(r.requestTimeoutMs, started + r.deadlineMs - callStart));
          const result = await attempt({ provider, keyId: pick.keyId, key, signal, timeoutMs });
          const end = now();
          const gone = signal?.aborted === true;
          await this.pool.report(provider, pick.keyId, reportedOutcome(result.outcome, gone), end - callStart, end, pick.trial);
          if (gone) throw new ClientGoneError();
          value = result.value;
          last = result.outcome;
          if (last.kind !== 'success') previous = { keyId: pick.keyId, reason: last.reason };
          step = nextStep({ kind: 'outcome', provider: provider.config.slug, requested, outcome: last, fallback: this.fallbackOf(provider, visited) }, budget());
        }
      }

      switch (step.kind) {
        case 'answer':
          return { value: value as T, provider, keyId: pickedKey!, attempts, latencyMs: now() - started };
        case 'pick':
          continue;
        case 'back_off':
          retries++;
          failed.push(pickedKey!);
          await sleep(step.delayMs, signal);
          continue;
        case 'wait':
          await sleep(step.delayMs, signal);
          continue;
        case 'fall_back':
          // A fallback after an outcome names why the rotation left the key; an empty provider does not.
          if (pickedKey !== null && previous) previous = { keyId: pickedKey, reason: step.reason };
          visited.add(step.to);
          provider = this.pool.get(step.to)!;
          continue;
        case 'fail':
          throw step.error;
      }
    }
  }
}
