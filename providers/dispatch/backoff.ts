import type { Cancel } from './cancel';

/** Doublings past this change nothing but could overflow: 2^30 times any base passes every cap. */
const MAX_DOUBLINGS = 30;

/**
 * The exponential formula, written once: the base for n ≤ 1, doubling with each n after, capped at
 * `maxMs`. A key's cooldown doubles with its strikes by it, and a retry's backoff with its retries.
 */
export function doubling(n: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(n - 1, 0), MAX_DOUBLINGS));
}

/** The same formula for the Redis scripts. */
export const LUA_DOUBLING = `local function doubling(n, base, max) return math.min(max, base * 2 ^ math.min(math.max(n - 1, 0), ${MAX_DOUBLINGS})) end`;

/**
 * Exponential backoff with "equal jitter": half the exponential delay, plus a random share of the
 * other half, so retries of many requests spread out but never fire immediately.
 */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random: () => number): number {
  const exp = doubling(retry, baseMs, maxMs);
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** A sleep that ends early (resolving) when the signal aborts. */
export function sleep(ms: number, signal?: Cancel): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
