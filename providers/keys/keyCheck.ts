import type { Attempt } from '../dispatch/dispatcher';
import type { Outcome } from '../limits/rateLimit';
import { type OpenRouterClient, UpstreamFailure } from '../upstream/openrouterClient';
import type { Cancel } from '../dispatch/cancel';

/** What GET /key says of a key a call was refused with: 'valid' (200), 'invalid' (401), else 'unknown'. */
export type KeyVerdict = 'valid' | 'invalid' | 'unknown';

/** GET /key is quick; a confirmation never waits longer than this, nor past the attempt's own timeout. */
const CHECK_TIMEOUT_MS = 5000;

export async function checkKey(client: OpenRouterClient, key: string, timeoutMs: number, signal?: Cancel): Promise<KeyVerdict> {
  try {
    const reply = await client.get('/key', key, { timeoutMs: Math.max(1, Math.min(timeoutMs, CHECK_TIMEOUT_MS)), signal });
    if (reply.status === 200) return 'valid';
    return reply.status === 401 ? 'invalid' : 'unknown';
  } catch (err) {
    if (err instanceof UpstreamFailure) return 'unknown';
    throw err;
  }
}

/**
 * A 401 disables a key only once GET /key with that key says 401 too (docs/design.md#blame-on-evidence). OpenRouter has answered
 * chat calls "401 User not found." for keys that GET /key accepted (anomalyco/opencode#2245,
 * RooCodeInc/Roo-Code#2445): then the key is fine and the answer is the upstream's failure, retried as
 * a 5xx would be. When GET /key cannot tell (no answer, another status), nothing is disabled either:
 * disabling needs evidence, and the key is avoided for the rest of this request like a 5xx's.
 */
export async function confirmedOutcome(client: OpenRouterClient, key: string, outcome: Outcome, timeoutMs: number, signal?: Cancel): Promise<Outcome> {
  if (!needsConfirmation(outcome)) return outcome;
  const verdict = await checkKey(client, key, timeoutMs, signal);
  if (verdict === 'invalid') return outcome;
  const why = verdict === 'valid' ? 'GET /key accepts the key' : 'GET /key could not confirm it';
  return { kind: 'retry', status: outcome.status, userId: outcome.userId, rate: outcome.rate, reason: 'unconfirmed_401', message: `${outcome.message} (${why}: not disabled)` };
}

/** A 401 that would disable the key: GET /key is asked first. */
function needsConfirmation(outcome: Outcome): outcome is Extract<Outcome, { kind: 'disable' }> {
  return outcome.kind === 'disable' && outcome.reason === 'invalid_key';
}

/** The attempt with its 401s confirmed by GET /key before they reach the key pool. */
export function withKeyCheck<T>(client: OpenRouterClient, attempt: Attempt<T>): Attempt<T> {
  return async (ctx) => {
    const result = await attempt(ctx);
    // Every other answer goes on at once: no turn of the microtask queue between it and the client (issue 21).
    if (!needsConfirmation(result.outcome)) return result;
    const outcome = await confirmedOutcome(client, ctx.key, result.outcome, ctx.timeoutMs, ctx.signal);
    return outcome === result.outcome ? result : { ...result, outcome };
  };
}
