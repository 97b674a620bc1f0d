/**
 * The dispatcher's decision table: (situation, the request's allowance: attempts and deadlines) → next step. Pure: the clock
 * and the jitter are arguments.
 */
import { type Allowance, nextStep, reportedOutcome, sharedOutcome, type Situation, type Step, startAllowance, waitUntil } from '../../../providers/dispatch/nextStep';
import { outcome, T0 } from '../../helpers/poolFixtures';

const allowance = (over: Partial<Allowance> = {}): Allowance => ({
  now: T0,
  attempts: 1,
  maxAttempts: 4,
  retries: 0,
  waitUntil: T0 + 3_000,
  deadline: T0 + 120_000,
  deadlineMs: 120_000,
  requestTimeoutMs: 30_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 10_000,
  cooldownMs: 60_000,
  random: () => 0.5,
  ...over,
});

const start = (configured: boolean, fallback: string | null = null): Situation => ({ kind: 'start', provider: 'kimi', configured, fallback });
const noKey = (retryAt: number | null, reason: 'cooling' | 'budget' | 'congested' | 'disabled', fallback: string | null = null): Situation => ({
  kind: 'no_key',
  provider: 'kimi',
  requested: 'kimi',
  pick: { keyId: null, retryAt, reason },
  fallback,
  last: null,
});
const after = (o: ReturnType<(typeof outcome)[keyof typeof outcome]>, fallback: string | null = null, provider = 'kimi'): Situation => ({
  kind: 'outcome',
  provider,
  requested: 'kimi',
  outcome: o,
  fallback,
});

/** A step as plain data: a failure by its status, type and Retry-After. */
function plain(step: Step): unknown {
  if (step.kind !== 'fail') return step;
  return { kind: 'fail', status: step.error.status, type: step.error.type, retryAfter: step.error.headers?.['Retry-After'] };
}

const fail = (status: number, type: string, retryAfter?: string) => ({ kind: 'fail', status, type, retryAfter });

describe('nextStep', () => {
  test.each<[string, Situation, Partial<Allowance>, unknown]>([
    // Before a pick
    ['keys configured → pick', start(true), {}, { kind: 'pick', timeoutMs: 30_000 }],
    ['keys configured, the deadline 800 ms away → pick, the call times out at the deadline', start(true), { now: T0 + 119_200 }, { kind: 'pick', timeoutMs: 800 }],
    ['no keys, a fallback → fall back', start(false, 'qwen'), {}, { kind: 'fall_back', to: 'qwen', reason: 'no_keys' }],
    ['no keys, no fallback → 503 provider_unconfigured', start(false), {}, fail(503, 'provider_unconfigured')],
    ['past the request deadline → 504 timeout', start(true), { now: T0 + 120_000 }, fail(504, 'upstream_timeout')],

    // The pick found no key
    ['cooling, recovery within the wait → wait until then', noKey(T0 + 2_500, 'cooling'), {}, { kind: 'wait', delayMs: 2_500 }],
    ['cooling, recovery exactly at the wait deadline → wait', noKey(T0 + 3_000, 'cooling'), {}, { kind: 'wait', delayMs: 3_000 }],
    ['cooling, recovery due now → wait at least 1 ms', noKey(T0, 'cooling'), {}, { kind: 'wait', delayMs: 1 }],
    ['cooling beyond the wait → 429 all_keys_rate_limited, Retry-After rounded up', noKey(T0 + 30_500, 'cooling'), {}, fail(429, 'all_keys_rate_limited', '31')],
    ['recovery within the wait but past the request deadline → 429', noKey(T0 + 2_000, 'cooling'), { deadline: T0 + 2_000, waitUntil: waitUntil(T0, 3_000, 2_000) }, fail(429, 'all_keys_rate_limited', '2')],
    ['budgets spent beyond the wait → 429 all_keys_rate_limited', noKey(T0 + 50_000, 'budget'), {}, fail(429, 'all_keys_rate_limited', '50')],
    ['congested beyond the wait → 429 upstream_rate_limited', noKey(T0 + 10_000, 'congested'), {}, fail(429, 'upstream_rate_limited', '10')],
    ['every key disabled → 503 no_usable_keys', noKey(null, 'disabled'), {}, fail(503, 'no_usable_keys')],
    ['no key but a fallback → fall back at once, no wait', noKey(T0 + 1_000, 'cooling', 'qwen'), {}, { kind: 'fall_back', to: 'qwen', reason: 'cooling' }],

    // A call ended
    ['success → answer', after(outcome.success()), {}, { kind: 'answer' }],
    ['success on the last attempt → answer', after(outcome.success()), { attempts: 4 }, { kind: 'answer' }],
    ['key cooled → pick the next key at once', after(outcome.cool('key', T0 + 30_000)), {}, { kind: 'pick', timeoutMs: 30_000 }],
    ['key disabled → pick the next key at once', after(outcome.disable()), {}, { kind: 'pick', timeoutMs: 30_000 }],
    ['5xx, first retry → back off base/2..base (jitter 0.5)', after(outcome.retry(502)), {}, { kind: 'back_off', delayMs: 750 }],
    ['5xx, third retry → back off doubled twice', after(outcome.retry(502)), { retries: 2, attempts: 3 }, { kind: 'back_off', delayMs: 3_000 }],
    ['5xx, backoff capped at the max', after(outcome.retry(502)), { retries: 10, attempts: 3, maxAttempts: 20 }, { kind: 'back_off', delayMs: 7_500 }],
    ['5xx, backoff cut at the request deadline', after(outcome.retry(502)), { deadline: T0 + 200 }, { kind: 'back_off', delayMs: 200 }],
    ['congested with a fallback → fall back', after(outcome.congested(T0 + 5_000), 'qwen'), {}, { kind: 'fall_back', to: 'qwen', reason: 'fallback:upstream_rate_limited' }],
    ['congested, no fallback → pick (the pick sees the congestion)', after(outcome.congested(T0 + 5_000)), {}, { kind: 'pick', timeoutMs: 30_000 }],
    ['client error → the upstream status, no retry', after(outcome.clientError(400)), {}, fail(400, 'upstream_rejected')],
    ['client error on the last attempt → still the client error', after(outcome.clientError(404)), { attempts: 4 }, fail(404, 'upstream_rejected')],
    // A 404 that says this model has no endpoint for the request (model_unavailable): another model may serve it.
    ['404 model unavailable, a fallback → fall back (no key is at fault)', after(outcome.unservable(404, 'model_unavailable'), 'qwen'), {}, { kind: 'fall_back', to: 'qwen', reason: 'fallback:model_unavailable' }],
    ['404 model unavailable, no fallback → the 404 as is', after(outcome.unservable(404, 'model_unavailable')), {}, fail(404, 'upstream_rejected')],
    ['404 model unavailable, a fallback, attempts spent → the 404 as is', after(outcome.unservable(404, 'model_unavailable'), 'qwen'), { attempts: 4 }, fail(404, 'upstream_rejected')],
    ['any other 404, a fallback → the 404 as is', after(outcome.clientError(404), 'qwen'), {}, fail(404, 'upstream_rejected')],
    ['a 400, a fallback → the 400 as is', after(outcome.clientError(400), 'qwen'), {}, fail(400, 'upstream_rejected')],
    // Answers no key could serve, and no fault of the request: the same answer from any key, so no retry.
    ['an answer over ORCHE_MAX_UPSTREAM_BYTES, a fallback → 502 upstream_too_large', after(outcome.unservable(502, 'upstream_too_large'), 'qwen'), {}, fail(502, 'upstream_too_large')],

    // The allowance of attempts is spent
    ['last attempt 5xx → 502 upstream_error', after(outcome.retry(502)), { attempts: 4 }, fail(502, 'upstream_error')],
    ['last attempt timed out → 504 upstream_timeout', after({ kind: 'retry', status: 504, reason: 'timeout', message: 'no answer' }), { attempts: 4 }, fail(504, 'upstream_timeout')],
    ['last attempt cooled with a reset → 429, Retry-After from the reset', after(outcome.cool('key', T0 + 20_000)), { attempts: 4 }, fail(429, 'all_keys_rate_limited', '20')],
    ['last attempt cooled, no reset → 429, Retry-After the default cooldown', after(outcome.cool('key')), { attempts: 4 }, fail(429, 'all_keys_rate_limited', '60')],
    ['last attempt congested → 429 upstream_rate_limited', after(outcome.congested(T0 + 7_000), 'qwen'), { attempts: 4 }, fail(429, 'upstream_rate_limited', '7')],
    ['last attempt disabled → 502 upstream_error', after(outcome.disable()), { attempts: 4 }, fail(502, 'upstream_error')],
  ])('%s', (_name, situation, over, expected) => {
    expect(plain(nextStep(situation, allowance(over)))).toEqual(expected);
  });

  test.each([
    ['the wait limit comes first', 3_000, 120_000, T0 + 3_000],
    ['the deadline comes first: a wait ends 1 ms before it', 3_000, 2_000, T0 + 1_999],
  ])('waitUntil: %s', (_name, maxWaitMs, deadlineMs, expected) => {
    expect(waitUntil(T0, maxWaitMs, deadlineMs)).toBe(expected);
  });

  test('startAllowance: no call yet, the wait and the request deadlines counted from the start', () => {
    const rotation = { cooldownMs: 60_000, maxCooldownMs: 600_000, maxAttempts: 4, maxWaitMs: 3_000, backoffBaseMs: 1_000, backoffMaxMs: 10_000, requestTimeoutMs: 30_000, deadlineMs: 120_000 };
    const random = () => 0.5;
    expect(startAllowance(T0, rotation, random)).toEqual(allowance({ attempts: 0, random }));
  });

  test('the 429 of a request whose every call was rate-limited names the provider the client asked for', () => {
    const step = nextStep({ ...(after(outcome.cool('key', T0 + 5_000), null, 'qwen') as Extract<Situation, { kind: 'outcome' }>) }, allowance({ attempts: 4 }));
    expect(step.kind === 'fail' && step.error.extra).toMatchObject({ provider: 'kimi' });
  });
});

describe('reportedOutcome: what the key learns from a call the client left during', () => {
  test.each([
    ['success', outcome.success(), 'success'],
    ['429', outcome.cool('key', T0 + 1000), 'cool'],
    ['401', outcome.disable(), 'disable'],
    ['congested', outcome.congested(T0 + 1000), 'congested'],
    ['5xx / the abort itself', outcome.retry(502), 'client_error'],
    ['client error', outcome.clientError(400), 'client_error'],
    ['unservable', outcome.unservable(), 'client_error'],
  ])('%s → %s', (_name, o, kind) => {
    expect(reportedOutcome(o, true).kind).toBe(kind);
    expect(reportedOutcome(o, false)).toBe(o);
  });
});

describe('docs/design.md#blame-on-evidence: blame only on evidence, client routing charged to the request', () => {
  const tooLarge = {
    kind: 'client_error' as const,
    status: 402,
    reason: 'request_exceeds_limit',
    message: 'Prompt tokens limit exceeded: 64128 > 6964.',
    body: undefined,
    limit: { name: 'prompt_tokens' as const, requested: 64128, allowed: 6964 },
  };

  test('a request too large for a limit fails at once with the upstream status, naming the limit, even with a fallback and attempts left', () => {
    const step = nextStep({ kind: 'outcome', provider: 'kimi', requested: 'kimi', outcome: tooLarge, fallback: 'glm45' }, allowance());
    expect(plain(step)).toEqual(fail(402, 'request_exceeds_limit'));
    expect(step.kind === 'fail' && step.error.extra).toMatchObject({ provider: 'kimi', limit: { name: 'prompt_tokens', requested: 64128, allowed: 6964 } });
  });

  test('sharedOutcome: an isolated request\'s failures reach the pool as its own; successes keep no rate or account; others pass as they are', () => {
    const cool = { kind: 'cool' as const, status: 429, scope: 'key' as const, until: T0 + 1000, reason: 'rate_limited', message: 'Rate limit exceeded', rate: { remaining: 0, resetAt: T0 + 1000 }, userId: 'user_x' };
    const congested = { kind: 'congested' as const, status: 429, reason: 'upstream_rate_limited', message: 'busy' };
    const disable = { kind: 'disable' as const, status: 402, reason: 'insufficient_credits' as const, message: 'Insufficient credits', accountWide: true };
    for (const o of [cool, congested, disable]) {
      expect(sharedOutcome(o, true)).toMatchObject({ kind: 'client_error', reason: 'client_routed', status: o.status });
      expect(sharedOutcome(o, false)).toBe(o);
    }
    const success = { kind: 'success' as const, status: 200, body: { ok: true }, rate: { remaining: 0, resetAt: T0 + 1000 }, userId: 'user_x' };
    expect(sharedOutcome(success, true)).toEqual({ kind: 'success', status: 200, body: { ok: true } });
  });
});
