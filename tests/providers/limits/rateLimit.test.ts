/**
 * classifyResponse(status, headers, body, now): every answer OpenRouter gives (docs/design.md#the-outcome-table), classified
 * exactly, with a fixed clock.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { carriedError, classifyResponse, failureOutcome, parseResetEpoch, parseRetryAfter, resetsInMessage } from '../../../providers/limits/rateLimit';
import { NEXT_MIDNIGHT, NEXT_MINUTE, T0 } from '../../helpers/poolFixtures';
import { FIXTURES } from '../../helpers/paths';

const USER = 'user_2zKqE8mVb3Xh9PaYr7TnWd4Lc1s';

function orError(code: number | string, message: string, metadata?: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { error: { code, message, ...(metadata ? { metadata } : {}), ...extra }, user_id: USER };
}

function rlHeaders(limit: number, remaining: number, reset: number | string) {
  return { 'X-RateLimit-Limit': String(limit), 'X-RateLimit-Remaining': String(remaining), 'X-RateLimit-Reset': String(reset) };
}

describe('classifyResponse: 429 bodies seen in real use', () => {
  test('1. free-models-per-min → account_free until X-RateLimit-Reset (epoch ms) from metadata.headers', () => {
    const reset = NEXT_MINUTE;
    const body = orError(429, 'Rate limit exceeded: free-models-per-min. ', { headers: rlHeaders(20, 0, reset), provider_name: null });
    const o = classifyResponse(429, {}, body, T0);
    expect(o).toEqual({
      kind: 'cool',
      status: 429,
      scope: 'account_free',
      until: reset,
      reason: 'free-models-per-min',
      message: 'Rate limit exceeded: free-models-per-min. ',
      userId: USER,
      rate: { limit: 20, remaining: 0, resetAt: reset },
    });
  });

  test('1b. free-models-per-min with a reset that is not the next minute: the reset sent wins', () => {
    const reset = T0 + 37_123;
    const body = orError(429, 'Rate limit exceeded: free-models-per-min. ', { headers: rlHeaders(20, 0, reset), provider_name: null });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account_free', until: reset });
  });

  test('1c. metadata.headers values given as numbers are read the same', () => {
    const body = orError(429, 'Rate limit exceeded: free-models-per-min. ', {
      headers: { 'X-RateLimit-Limit': 20, 'X-RateLimit-Remaining': 0, 'X-RateLimit-Reset': NEXT_MINUTE },
      provider_name: null,
    });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ until: NEXT_MINUTE, rate: { limit: 20, remaining: 0, resetAt: NEXT_MINUTE } });
  });

  test('2. free-models-per-day → account_free until midnight UTC from metadata.headers', () => {
    const body = orError(429, 'Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day', {
      headers: rlHeaders(50, 0, NEXT_MIDNIGHT),
      provider_name: null,
    });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({
      kind: 'cool',
      scope: 'account_free',
      until: NEXT_MIDNIGHT,
      reason: 'free-models-per-day',
      rate: { limit: 50, remaining: 0, resetAt: NEXT_MIDNIGHT },
    });
  });

  test('2b. free-models-per-day-high-balance with limit_source openrouter_free_tier_daily → account_free until midnight', () => {
    const body = orError(429, 'Rate limit exceeded: free-models-per-day-high-balance.', {
      headers: rlHeaders(1000, 0, NEXT_MIDNIGHT),
      limit_source: 'openrouter_free_tier_daily',
      provider_name: null,
    });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({
      kind: 'cool',
      scope: 'account_free',
      until: NEXT_MIDNIGHT,
      reason: 'free-models-per-day-high-balance',
      rate: { limit: 1000 },
    });
  });

  test('2c. limit_source openrouter_free_tier_daily alone (generic message) → account_free per day', () => {
    const body = orError(429, 'Rate limit exceeded', { limit_source: 'openrouter_free_tier_daily' });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account_free', until: NEXT_MIDNIGHT, reason: 'free-models-per-day' });
  });

  test('free-models-per-min with no reset anywhere → the next whole minute', () => {
    const body = orError(429, 'Rate limit exceeded: free-models-per-min. ', { provider_name: null });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account_free', until: NEXT_MINUTE });
  });

  test('free-models-per-day with no reset anywhere → the next 00:00 UTC', () => {
    const body = orError(429, 'Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day', { provider_name: null });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account_free', until: NEXT_MIDNIGHT });
  });

  test('3. limit_rpm/<model>/<uuid> → account_model until the reset', () => {
    const reset = NEXT_MINUTE;
    const body = orError(
      429,
      'Rate limit exceeded: limit_rpm/moonshotai/kimi-k2/4c1c2f5a-6b3e-4bb4-9a0e-2f6d1e0c9a11. High demand for moonshotai/kimi-k2:free on OpenRouter - limited to 8 requests per minute. Please retry shortly.',
      { headers: rlHeaders(8, 0, reset), provider_name: null },
    );
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account_model', until: reset, reason: 'model_cap', userId: USER });
  });

  test('3b. limit_rpd/… → account_model', () => {
    const body = orError(429, 'Rate limit exceeded: limit_rpd/z-ai/glm-4.5-air/0f0e. High demand for z-ai/glm-4.5-air:free on OpenRouter.', {
      headers: rlHeaders(200, 0, NEXT_MIDNIGHT),
    });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account_model', until: NEXT_MIDNIGHT, reason: 'model_cap' });
  });

  test('3c. limit_source openrouter_shared_capacity → account_model', () => {
    const body = orError(429, 'Rate limit exceeded', { limit_source: 'openrouter_shared_capacity', headers: rlHeaders(8, 0, NEXT_MINUTE) });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account_model', until: NEXT_MINUTE, reason: 'model_cap' });
  });

  test('4. "Provider returned error" + raw "temporarily rate-limited upstream" + provider_name → congested for retry_after_seconds', () => {
    const raw = 'moonshotai/kimi-k2:free is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations';
    const body = orError(429, 'Provider returned error', {
      raw,
      provider_name: 'Chutes',
      retry_after_seconds: 30,
      limit_source: 'upstream_provider_shared_pool',
      error_type: 'rate_limit_exceeded',
    });
    expect(classifyResponse(429, {}, body, T0)).toEqual({
      kind: 'congested',
      status: 429,
      until: T0 + 30_000,
      reason: 'upstream_rate_limited',
      message: raw,
      userId: USER,
      rate: undefined,
    });
  });

  test('4b. "Provider returned error" with provider_name and a JSON raw, no retry hint → congested, until undefined', () => {
    const raw = JSON.stringify({ error: { message: 'qwen/qwen3-235b-a22b:free is temporarily rate-limited upstream. Please retry shortly.' } });
    const body = orError(429, 'Provider returned error', { raw, provider_name: 'Venice' });
    const o = classifyResponse(429, {}, body, T0);
    expect(o).toMatchObject({ kind: 'congested', reason: 'upstream_rate_limited', status: 429 });
    expect(o.kind === 'congested' && o.until).toBeUndefined();
  });

  test('5. capacity_exhausted with availability.retry_after → congested for that many seconds', () => {
    const body = orError(429, 'All providers for moonshotai/kimi-k2 are at capacity. Retry after 40 seconds.', undefined, {
      availability: { code: 'capacity_exhausted', retryable: true, retry_after: 40 },
    });
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'congested', until: T0 + 40_000, reason: 'capacity_exhausted', status: 429 });
  });

  test('6. generic "Rate limit exceeded" → cool the key, no reset (default cooldown)', () => {
    const body = { error: { code: 429, message: 'Rate limit exceeded', metadata: { error_type: 'rate_limit_exceeded' } } };
    expect(classifyResponse(429, {}, body, T0)).toEqual({
      kind: 'cool',
      status: 429,
      scope: 'key',
      until: undefined,
      reason: 'rate_limited',
      message: 'Rate limit exceeded',
      userId: undefined,
      rate: undefined,
    });
  });
});

describe('classifyResponse: reset hints', () => {
  const generic = { error: { code: 429, message: 'Rate limit exceeded' } };

  test('Retry-After in seconds', () => {
    expect(classifyResponse(429, { 'retry-after': '7' }, generic, T0)).toMatchObject({ kind: 'cool', scope: 'key', until: T0 + 7_000 });
  });

  test('Retry-After as an HTTP date', () => {
    const date = new Date(T0 + 30_000).toUTCString(); // Sun, 22 Nov 2026 12:30:40 GMT
    expect(date).toBe('Sun, 22 Nov 2026 12:30:40 GMT');
    expect(classifyResponse(429, { 'Retry-After': date }, generic, T0)).toMatchObject({ kind: 'cool', until: T0 + 30_000 });
  });

  test('X-RateLimit-Reset below 10^12 is read as epoch seconds', () => {
    const resetSeconds = NEXT_MINUTE / 1000;
    expect(resetSeconds).toBeLessThan(1e12);
    const o = classifyResponse(429, { 'x-ratelimit-reset': String(resetSeconds) }, generic, T0);
    expect(o).toMatchObject({ kind: 'cool', until: NEXT_MINUTE, rate: { resetAt: NEXT_MINUTE } });
  });

  test('X-RateLimit-Reset in epoch ms from the response headers', () => {
    expect(classifyResponse(429, { 'X-RateLimit-Reset': String(T0 + 12_345) }, generic, T0)).toMatchObject({ until: T0 + 12_345 });
  });

  test('the later of several hints wins (Retry-After 5 s, retry_after_seconds 10, X-RateLimit-Reset +20 s)', () => {
    const body = orError(429, 'Rate limit exceeded', { retry_after_seconds: 10, headers: { 'X-RateLimit-Reset': String(T0 + 20_000) } });
    expect(classifyResponse(429, { 'Retry-After': '5' }, body, T0)).toMatchObject({ kind: 'cool', until: T0 + 20_000 });
    // …and the other way round: a later Retry-After beats an earlier reset.
    expect(classifyResponse(429, { 'Retry-After': '45' }, body, T0)).toMatchObject({ kind: 'cool', until: T0 + 45_000 });
  });

  test('deadlines are whole milliseconds, rounded up: retry_after_seconds 0.3337 (and a fractional Retry-After, reset or resets_at) never gives a fraction', () => {
    const fractional = [
      classifyResponse(429, {}, orError(429, 'Rate limit exceeded', { retry_after_seconds: 0.3337 }), T0),
      classifyResponse(429, { 'Retry-After': '0.0005' }, generic, T0),
      classifyResponse(429, { 'X-RateLimit-Reset': '1.2345' }, generic, T0),
      classifyResponse(429, {}, orError(429, 'Rate limit exceeded', { resets_at: (T0 + 777.7) / 1000 }), T0),
      classifyResponse(429, {}, { error: { code: 429, message: 'Rate limit exceeded', availability: { retry_after: 0.0001 } } }, T0),
    ];
    const untils = fractional.map((o) => (o.kind === 'cool' || o.kind === 'congested' ? o.until : undefined));
    expect(untils).toEqual([T0 + 334, T0 + 1, T0 + 1235, T0 + 778, T0 + 1]);
  });

  test('a reset in the past is ignored (default cooldown)', () => {
    expect(classifyResponse(429, { 'X-RateLimit-Reset': String(T0 - 5_000) }, generic, T0)).toMatchObject({ kind: 'cool', until: undefined });
  });

  test('user_id is extracted from the top level of an error body', () => {
    const o = classifyResponse(401, {}, { error: { code: 401, message: 'User not found.' }, user_id: 'user_abc123' }, T0);
    expect(o.userId).toBe('user_abc123');
  });

  test('parseRetryAfter: seconds, fractional seconds, date, garbage', () => {
    expect(parseRetryAfter('3', T0)).toBe(T0 + 3_000);
    expect(parseRetryAfter('1.5', T0)).toBe(T0 + 1_500);
    expect(parseRetryAfter('Sun, 22 Nov 2026 12:31:00 GMT', T0)).toBe(NEXT_MINUTE);
    expect(parseRetryAfter('soon', T0)).toBeUndefined();
    expect(parseRetryAfter(undefined, T0)).toBeUndefined();
  });

  test('parseResetEpoch: epoch ms, epoch seconds', () => {
    expect(parseResetEpoch(String(NEXT_MINUTE), T0)).toBe(NEXT_MINUTE);
    expect(parseResetEpoch(NEXT_MINUTE / 1000, T0)).toBe(NEXT_MINUTE);
    expect(parseResetEpoch('', T0)).toBeUndefined();
  });
});

describe('classifyResponse: errors inside a 200', () => {
  test('a top-level error in a 200 is treated as the 429 it carries', () => {
    const body = orError(429, 'Rate limit exceeded: free-models-per-min. ', { provider_name: null });
    expect(classifyResponse(200, {}, body, T0)).toMatchObject({ kind: 'cool', status: 429, scope: 'account_free', until: NEXT_MINUTE, userId: USER });
  });

  test('choices[0].finish_reason "error" with choices[0].error is treated as the status it carries', () => {
    const body = {
      id: 'gen-1',
      object: 'chat.completion',
      choices: [{ index: 0, finish_reason: 'error', message: { role: 'assistant', content: '' }, error: { code: 502, message: 'Provider returned error' } }],
    };
    expect(classifyResponse(200, {}, body, T0)).toMatchObject({ kind: 'retry', status: 502, reason: 'upstream_502', message: 'Provider returned error' });
  });

  test('choices[0].error carrying a 429 cools', () => {
    const body = { choices: [{ index: 0, finish_reason: 'error', error: { code: 429, message: 'Rate limit exceeded' } }] };
    expect(classifyResponse(200, {}, body, T0)).toMatchObject({ kind: 'cool', status: 429, scope: 'key' });
  });

  test('error.code as the string "429" counts as 429', () => {
    const body = { error: { code: '429', message: 'Rate limit exceeded: free-models-per-min. ' } };
    expect(classifyResponse(200, {}, body, T0)).toMatchObject({ kind: 'cool', status: 429, scope: 'account_free', reason: 'free-models-per-min' });
  });

  test('a plain 200 completion is a success and carries the body', () => {
    const body = { id: 'gen-2', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'hi' } }] };
    expect(classifyResponse(200, {}, body, T0)).toEqual({ kind: 'success', status: 200, body, userId: undefined, rate: undefined });
  });

  test('a 200 with X-RateLimit-Remaining 0 reports the rate info', () => {
    const body = { choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'hi' } }] };
    expect(classifyResponse(200, rlHeaders(20, 0, NEXT_MINUTE), body, T0)).toMatchObject({ kind: 'success', rate: { limit: 20, remaining: 0, resetAt: NEXT_MINUTE } });
  });
});

describe('classifyResponse: other statuses', () => {
  test('401 → disable invalid_key', () => {
    const o = classifyResponse(401, {}, { error: { code: 401, message: 'No auth credentials found' } }, T0);
    expect(o).toMatchObject({ kind: 'disable', reason: 'invalid_key', status: 401, message: 'No auth credentials found' });
  });

  test('402 → disable insufficient_credits', () => {
    const o = classifyResponse(402, {}, { error: { code: 402, message: 'Insufficient credits. Add more using https://openrouter.ai/credits' } }, T0);
    expect(o).toMatchObject({ kind: 'disable', reason: 'insufficient_credits', status: 402 });
  });

  test('402 with Retry-After → cool the account until then', () => {
    const o = classifyResponse(402, { 'Retry-After': '3' }, { error: { code: 402, message: 'Too much spending in flight' } }, T0);
    expect(o).toMatchObject({ kind: 'cool', scope: 'account', until: T0 + 3_000, reason: 'in_flight_budget', status: 402 });
  });

  test('402 with limit_source openrouter_in_flight_budget → cool the account', () => {
    const body = { error: { code: 402, message: 'Too much spending in flight', metadata: { limit_source: 'openrouter_in_flight_budget', retry_after_seconds: 2 } } };
    expect(classifyResponse(402, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'account', until: T0 + 2_000, reason: 'in_flight_budget' });
  });

  test('403 with limit_source and resets_at → cool the key until resets_at', () => {
    const resetsAt = '2026-11-23T00:00:00.000Z';
    const body = { error: { code: 403, message: 'Key limit exceeded', metadata: { limit_source: 'key_limit', resets_at: resetsAt } } };
    expect(classifyResponse(403, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'key', until: NEXT_MIDNIGHT, reason: 'key_cap', status: 403 });
  });

  test('403 with limit_source and resets_at in epoch ms → cool the key until then', () => {
    const body = { error: { code: 403, message: 'Budget cap reached', metadata: { limit_source: 'budget', resets_at: T0 + 3_600_000 } } };
    expect(classifyResponse(403, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'key', until: T0 + 3_600_000 });
  });

  test('403 moderation → client_error, returned as is', () => {
    const body = {
      error: {
        code: 403,
        message: 'moonshotai/kimi-k2 requires moderation on OpenAI. Your input was flagged for "violence".',
        metadata: { reasons: ['violence'], flagged_input: '...', provider_name: 'OpenAI', model_slug: 'moonshotai/kimi-k2' },
      },
    };
    expect(classifyResponse(403, {}, body, T0)).toEqual({
      kind: 'client_error',
      status: 403,
      reason: 'moderation',
      message: 'moonshotai/kimi-k2 requires moderation on OpenAI. Your input was flagged for "violence".',
      body,
      userId: undefined,
      rate: undefined,
    });
  });

  test.each([500, 502, 503, 524, 529, 408])('%i → retry', (status) => {
    const body = { error: { code: status, message: 'Provider returned error', metadata: { provider_name: 'X', raw: 'overloaded' } } };
    expect(classifyResponse(status, {}, body, T0)).toMatchObject({ kind: 'retry', status, reason: `upstream_${status}` });
  });

  test('400 → client_error, not retried', () => {
    const body = { error: { code: 400, message: 'foo/bar is not a valid model ID' } };
    expect(classifyResponse(400, {}, body, T0)).toMatchObject({ kind: 'client_error', status: 400, reason: 'upstream_400', message: 'foo/bar is not a valid model ID', body });
  });

  test('a non-JSON body on a 502 → retry', () => {
    const o = classifyResponse(502, { 'content-type': 'text/html' }, '<html><body>502 Bad Gateway</body></html>', T0);
    expect(o).toMatchObject({ kind: 'retry', status: 502, reason: 'upstream_502', message: 'Upstream answered 502' });
  });

  test('a 200 with a non-JSON body → retry (502)', () => {
    expect(classifyResponse(200, {}, 'not json at all', T0)).toMatchObject({ kind: 'retry', status: 502, reason: 'bad_upstream_body' });
    expect(classifyResponse(200, {}, undefined, T0)).toMatchObject({ kind: 'retry', status: 502, reason: 'bad_upstream_body' });
  });

  test('failureOutcome: timeout → retry 504, network → retry 502', () => {
    expect(failureOutcome('timeout', 'took too long')).toEqual({ kind: 'retry', status: 504, reason: 'timeout', message: 'took too long' });
    expect(failureOutcome('network', 'ECONNRESET')).toEqual({ kind: 'retry', status: 502, reason: 'network', message: 'ECONNRESET' });
  });
});

/**
 * Real answers orche once misread (docs/design.md#the-outcome-table). Each body is as published at the source named
 * beside it; where the source showed only part of the answer, the comment says what was filled in.
 */
describe('classifyResponse: real answers (docs/design.md#the-outcome-table)', () => {
  // https://github.com/gptme/gptme/issues/1449 (2026-02-23): `Error code: 403 - {'error': {...}}`, the body as printed.
  const monthly = { error: { message: 'Key limit exceeded (monthly limit). Manage it using https://openrouter.ai/settings/keys', code: 403 } };
  // https://github.com/MCPJam/inspector/issues/1287 (2026-01-26): the message as relayed; body shape as in gptme#1449.
  const total = { error: { message: 'Key limit exceeded (total limit). Manage it using https://openrouter.ai/settings/keys', code: 403 } };
  // https://github.com/NousResearch/hermes-agent/issues/93979 (2026-08-24): "HTTP 403 containing `Key limit exceeded (daily limit)`";
  // the rest of the message and the body shape as in gptme#1449.
  const daily = { error: { message: 'Key limit exceeded (daily limit). Manage it using https://openrouter.ai/settings/keys', code: 403 } };
  // https://github.com/RooCodeInc/Roo-Code/issues/515 (2025-01-23), title: "403 Key limit exceeded. Manage it using https://openrouter.ai/keys".
  const plain = { error: { message: 'Key limit exceeded. Manage it using https://openrouter.ai/keys', code: 403 } };

  test.each([
    ['total limit → disabled key_limit (MCPJam/inspector#1287)', total, { kind: 'disable', reason: 'key_limit', status: 403 }],
    ['no window named (older form) → disabled key_limit (Roo-Code#515)', plain, { kind: 'disable', reason: 'key_limit', status: 403 }],
    ['daily limit → the key cools until 00:00 UTC (hermes-agent#93979)', daily, { kind: 'cool', scope: 'key', until: NEXT_MIDNIGHT, status: 403 }],
    ['monthly limit → the key cools until the 1st of next month, 00:00 UTC (gptme#1449)', monthly, { kind: 'cool', scope: 'key', until: Date.UTC(2026, 11, 1), status: 403 }],
  ])('403 Key limit exceeded without limit_source: %s', (_name, body, expected) => {
    expect(classifyResponse(403, { 'content-type': 'application/json' }, body, T0)).toMatchObject(expected);
  });

  test('resetsInMessage: "resets <date>" in a message, as docs/design.md#the-outcome-table names it (parser only, no published sample yet)', () => {
    expect(resetsInMessage('Key limit exceeded (weekly limit). Resets 2026-11-30T00:00:00Z. Manage it', T0)).toBe(Date.UTC(2026, 10, 30));
    expect(resetsInMessage('limit reached, resets at 2026-11-23T00:00:00.000Z', T0)).toBe(NEXT_MIDNIGHT);
    expect(resetsInMessage('resets on Mon, 23 Nov 2026 00:00:00 GMT', T0)).toBe(NEXT_MIDNIGHT);
    expect(resetsInMessage('resets 2026-11-01T00:00:00Z', T0)).toBeUndefined(); // in the past
    expect(resetsInMessage('Key limit exceeded (total limit).', T0)).toBeUndefined();
  });

  test('402 in-flight budget named only in its text (no Retry-After published) cools the account, default cooldown (corpus 402-in-flight-budget)', () => {
    // tests/fixtures/openrouter/402-in-flight-budget.json: https://github.com/aiosbrain/aios-team-brain/pull/658 (2026-08-26).
    const body = {
      error: {
        message: 'This request would exceed your available credits given your current in-flight requests. Retry after in-flight requests settle, or add credits.',
        code: 402,
        metadata: { reason: 'in_flight_budget_exhausted', remedy_hint: 'Retry after your in-flight requests settle (see the Retry-After header).' },
      },
    };
    expect(classifyResponse(402, { 'content-type': 'application/json' }, body, T0)).toMatchObject({ kind: 'cool', scope: 'account', until: undefined, reason: 'in_flight_budget' });
  });

  test('402 for the account\'s credits → disabled insufficient_credits, account-wide (free-claude-code#772)', () => {
    // https://github.com/Alishahryar1/free-claude-code/issues/772 (2026-06-11), "Upstream error:" as pasted.
    const body = {
      error: {
        message: 'Insufficient credits. This account never purchased credits. Make sure your key is on the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits',
        code: 402,
      },
    };
    expect(classifyResponse(402, {}, body, T0)).toMatchObject({ kind: 'disable', reason: 'insufficient_credits', accountWide: true, status: 402 });
  });

  test('402 "can only afford 0 … create a key with a higher monthly limit" is the key\'s own monthly cap (anomalyco/opencode#12219)', () => {
    // https://github.com/anomalyco/opencode/issues/12219 (2026-02-05): the message as shown; body shape as in free-claude-code#772.
    const body = {
      error: {
        message: 'This request requires more credits, or fewer max_tokens. You requested up to 32000 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit',
        code: 402,
      },
    };
    expect(classifyResponse(402, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'key', until: Date.UTC(2026, 11, 1), status: 402 });
  });

  test('402 "can only afford <N>" with N above 0 is this request being too big for the balance: the client\'s to fix, nothing disabled (qwen-code#73)', () => {
    // https://github.com/QwenLM/qwen-code/issues/73 (2025-07-23): the message as logged; body shape as in free-claude-code#772.
    const body = {
      error: {
        message: 'This request requires more credits, or fewer max_tokens. You requested up to 225702 tokens, but can only afford 92985. To increase, visit https://openrouter.ai/settings/credits and add more credits',
        code: 402,
      },
    };
    expect(classifyResponse(402, {}, body, T0)).toMatchObject({ kind: 'client_error', status: 402 });
  });

  test('a 403 relayed from a provider (not BYOK, not moderation) is the provider\'s failure: retried as a 5xx, no key changes (docs/design.md#blame-on-evidence)', () => {
    // https://github.com/crmne/ruby_llm/pull/431 (2025-09-25): a provider refusing the request's region.
    const body = {
      error: {
        message: 'Provider returned error',
        code: 403,
        metadata: {
          raw: '{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}',
          provider_name: 'OpenAI',
        },
      },
      user_id: 'user_2',
    };
    expect(classifyResponse(403, {}, body, T0)).toMatchObject({ kind: 'retry', status: 403, reason: 'provider_403' });
  });

  test('a 429 whose body is Cloudflare\'s "error code: 1015" is an edge limit on this host: no key cools', () => {
    // The text Cloudflare answers API clients with, as quoted in https://github.com/BerriAI/litellm/issues/8448
    // (2025-02-11); filled in: a 429 from the host itself, body as plain text.
    const o = classifyResponse(429, { 'content-type': 'text/plain' }, 'error code: 1015', T0);
    expect(o).toMatchObject({ kind: 'edge', status: 429, reason: 'edge_rate_limited', until: undefined });
    expect(classifyResponse(429, { 'content-type': 'text/plain', 'retry-after': '20' }, 'error code: 1015', T0)).toMatchObject({ kind: 'edge', until: T0 + 20_000 });
  });

  test('a 429 with Cloudflare\'s 1015 block page is an edge limit too', () => {
    // The text of Cloudflare's 1015 page as a user pasted it, https://github.com/cloudflare/cloudflare-docs/issues/29602
    // (2026-04-06); filled in: a 429 from this host with that text as its body.
    const page = [
      'Error 1015 Ray ID: 9e7c8f741a2c1c63 • 2026-04-06 00:08:50 UTC',
      'You are being rate limited',
      'What happened?',
      'The owner of this website (www.paypal.com) has banned you temporarily from accessing this website.',
    ].join('\n');
    expect(classifyResponse(429, { 'content-type': 'text/html' }, page, T0)).toMatchObject({ kind: 'edge', status: 429 });
  });

  test('"error code: 1015" inside a provider\'s raw is that provider\'s edge: upstream congestion, not ours (litellm#8448)', () => {
    // https://github.com/BerriAI/litellm/issues/8448 (2025-02-11): a 200 carrying the error, as logged.
    const body = { error: { message: 'Provider returned error', code: 429, metadata: { raw: 'error code: 1015', provider_name: 'Kluster' } }, user_id: 'user_redacted' };
    expect(classifyResponse(200, {}, body, T0)).toMatchObject({ kind: 'congested', status: 429 });
  });
});

/** Samples of the corpus (tests/fixtures/openrouter/<id>.json, with their sources there), for the rules they decide. */
describe('classifyResponse: corpus samples for the docs/design.md#the-outcome-table rules', () => {
  test('429-upstream-message-itself: "temporarily rate-limited upstream" as the message itself → congested, no key cools', () => {
    // https://github.com/anomalyco/opencode/issues/24534 (2026-04-26).
    const body = {
      error: {
        message: '[DeepSeek] deepseek/deepseek-v4-pro is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations',
        code: 429,
      },
    };
    expect(classifyResponse(429, { 'content-type': 'application/json' }, body, T0)).toMatchObject({ kind: 'congested', status: 429, until: undefined, reason: 'upstream_rate_limited' });
    // The same text in a stream chunk (a 200 carrying it) is the same congestion.
    expect(classifyResponse(200, {}, body, T0)).toMatchObject({ kind: 'congested', status: 429 });
  });

  test('402-key-max-tokens-limit: the request\'s max_tokens against what the key has left → the request\'s 4xx naming the limit, no key changes (docs/design.md#blame-on-evidence)', () => {
    // https://github.com/cline/cline/issues/940 (2024-12-18).
    const body = { error: { message: 'max_tokens limit exceeded: 100000 > 9577. To increase, visit https://openrouter.ai/keys and create a key with a higher limit', code: 402 } };
    expect(classifyResponse(402, {}, body, T0)).toMatchObject({ kind: 'client_error', reason: 'request_exceeds_limit', status: 402, limit: { name: 'max_tokens', requested: 100000, allowed: 9577 } });
  });

  test('429-google-resource-exhausted-relayed: a non-numeric error.status is not a status; the 429 cools the key', () => {
    // https://github.com/RooCodeInc/Roo-Code/issues/2000 (2025-03-26).
    const body = { error: { code: 429, message: 'You exceeded your current quota, please check your plan and billing details.', status: 'RESOURCE_EXHAUSTED' } };
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'cool', scope: 'key', status: 429 });
  });
});

/**
 * 404s: the corpus's real answers (tests/fixtures/openrouter/404-*.json, sources there). A 404 that says
 * no endpoint of this model can serve the request — the model or its :free variant is gone, the
 * account's provider settings allow none of its providers, or none supports the request's tools — is
 * `model_unavailable` (the dispatcher falls back to another model when one is configured; README).
 * Nothing about it is a key's fault, nor the request's: unservable, no key state changes.
 */
describe('classifyResponse: 404 corpus samples', () => {
  const corpus = join(FIXTURES, 'openrouter');
  const samples = readdirSync(corpus)
    .filter((f) => f.startsWith('404-') && f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(corpus, f), 'utf8')) as { id: string; status: number; headers: Record<string, string>; body: unknown });

  test('the corpus holds the 404s this table is about', () => {
    expect(samples.map((s) => s.id)).toEqual([
      '404-free-period-ended',
      '404-free-variant-stopped',
      '404-no-allowed-providers',
      '404-no-endpoints-grok-free',
      '404-no-endpoints-hermes-free',
      '404-no-endpoints-tool-choice',
      '404-no-endpoints-tool-use',
      '404-no-endpoints-user-id',
    ]);
  });

  test.each(samples.map((s) => [s.id, s] as const))('%s → unservable model_unavailable, no key state', (_id, s) => {
    const o = classifyResponse(s.status, s.headers, s.body, T0);
    expect(o).toMatchObject({ kind: 'unservable', status: 404, reason: 'model_unavailable' });
    // The same answer carried inside a 200 (a stream chunk) is the same.
    expect(classifyResponse(200, {}, s.body, T0)).toMatchObject({ kind: 'unservable', status: 404, reason: 'model_unavailable' });
  });

  test('a 404 that names no endpoint problem (not a sample: any other text, e.g. a wrong base path) stays upstream_404', () => {
    expect(classifyResponse(404, {}, { error: { code: 404, message: 'Not Found' } }, T0)).toMatchObject({ kind: 'client_error', reason: 'upstream_404' });
  });
});

/**
 * carriedError: the error forms docs/design.md#reading-an-answer lists. No published OpenRouter answer of these forms is in the
 * corpus yet, so these are parser cases over the forms as docs/design.md#reading-an-answer names them, not samples.
 */
describe('carriedError: the forms docs/design.md#reading-an-answer names', () => {
  test.each([
    ['status as http_status', { error: { message: 'Rate limit exceeded', http_status: 429 } }, 429],
    ['status as a string code', { error: { message: 'Rate limit exceeded', code: '429' } }, 429],
    ['doubly nested', { error: { error: { message: 'Rate limit exceeded', code: 429 } } }, 429],
    ['a bare string', { error: 'Rate limit exceeded' }, 502],
    ['finish_reason "error" without an error object', { choices: [{ index: 0, finish_reason: 'error', message: { role: 'assistant', content: '' } }] }, 502],
    ['native_finish_reason "error" without an error object', { choices: [{ index: 0, finish_reason: 'stop', native_finish_reason: 'error', message: { role: 'assistant', content: '' } }] }, 502],
  ])('%s is an error, with the status it carries (else 502)', (_name, body, status) => {
    expect(carriedError(body)).toBeDefined();
    const o = classifyResponse(200, {}, body, T0);
    expect(o.kind).not.toBe('success');
    expect(o.status).toBe(status);
  });
});

/** docs/design.md#blame-on-evidence "Blame only on evidence": the samples are in tests/fixtures/openrouter (sources there). */
describe('classifyResponse: blame only on evidence (docs/design.md#blame-on-evidence)', () => {
  test('"Prompt tokens limit exceeded: X > Y" is the request\'s size, with the credits link or the key link (continue#11227, opencode#12219)', () => {
    const credits = { error: { message: 'Prompt tokens limit exceeded: 64128 > 6964. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account', code: 402 } };
    const key = { error: { message: 'Prompt tokens limit exceeded: 230799 > 91442. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit', code: 402 } };
    expect(classifyResponse(402, {}, credits, T0)).toMatchObject({ kind: 'client_error', reason: 'request_exceeds_limit', limit: { name: 'prompt_tokens', requested: 64128, allowed: 6964 } });
    expect(classifyResponse(402, {}, key, T0)).toMatchObject({ kind: 'client_error', reason: 'request_exceeds_limit', limit: { name: 'prompt_tokens', requested: 230799, allowed: 91442 } });
    // The same text with 403 is the same request.
    expect(classifyResponse(403, {}, key, T0)).toMatchObject({ kind: 'client_error', reason: 'request_exceeds_limit' });
  });

  test('"can only afford N" with N above 0 names the limit; with 0 and no key link the balance is gone', () => {
    // https://github.com/Gitlawb/openclaude/issues/1125 (2026-05-12).
    const some = { error: { message: 'This request requires more credits, or fewer max_tokens. You requested up to 32000 tokens, but can only afford 27342. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account', code: 402 } };
    expect(classifyResponse(402, {}, some, T0)).toMatchObject({ kind: 'client_error', limit: { name: 'affordable_tokens', requested: 32000, allowed: 27342 } });
    // The same message with nothing affordable: the account's balance is gone.
    const none = { error: { message: 'This request requires more credits, or fewer max_tokens. You requested up to 32000 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account', code: 402 } };
    expect(classifyResponse(402, {}, none, T0)).toMatchObject({ kind: 'disable', reason: 'insufficient_credits', accountWide: true });
  });

  test('only a balance that is gone disables the account; a 402 that names no cause cools the key alone', () => {
    // The simulator's text, OpenRouter's as in free-claude-code#772 above.
    const never = { error: { message: 'Insufficient credits. This account never purchased credits.', code: 402 } };
    expect(classifyResponse(402, {}, never, T0)).toMatchObject({ kind: 'disable', accountWide: true });
    expect(classifyResponse(402, {}, { error: { message: 'Payment Required', code: 402 } }, T0)).toMatchObject({ kind: 'cool', scope: 'key', reason: 'payment_required' });
  });

  test('a 401 relayed from a provider is retried and changes no key; OpenRouter\'s own 401 asks for a disable (confirmed by GET /key later)', () => {
    // https://github.com/OpenRouterTeam/ai-sdk-provider/issues/24 (2025-02-23).
    const relayed = { error: { message: 'Provider returned error', code: 401, metadata: { raw: '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}', provider_name: 'Anthropic' } } };
    expect(classifyResponse(401, {}, relayed, T0)).toMatchObject({ kind: 'retry', reason: 'provider_401' });
    // BYOK: the account's own provider key failed; not relayed-provider evidence, so the ordinary 401 path (and its GET /key check).
    const byok = { error: { ...relayed.error, metadata: { ...relayed.error.metadata, is_byok: true } } };
    expect(classifyResponse(401, {}, byok, T0)).toMatchObject({ kind: 'disable', reason: 'invalid_key' });
    expect(classifyResponse(401, {}, { error: { message: 'User not found.', code: 401 } }, T0)).toMatchObject({ kind: 'disable', reason: 'invalid_key' });
  });

  test('a moderation 403 from a provider stays the client\'s error', () => {
    const body = { error: { message: 'Your input was flagged', code: 403, metadata: { reasons: ['harassment'], flagged_input: '...', provider_name: 'SimModerator' } } };
    expect(classifyResponse(403, {}, body, T0)).toMatchObject({ kind: 'client_error', reason: 'moderation' });
  });

  test('a 429 naming a provider\'s own worker limit is model congestion, not the key\'s limit', () => {
    // Nvidia's worker-limit text, which public captures show OpenRouter relaying.
    const body = { error: { message: 'Upstream error from Nvidia: ResourceExhausted: Worker local total request limit reached (16/16)', code: 429 } };
    expect(classifyResponse(429, {}, body, T0)).toMatchObject({ kind: 'congested', reason: 'upstream_provider_limit' });
    // The generic 429 stays the key's.
    expect(classifyResponse(429, {}, { error: { message: 'Rate limit exceeded', code: 429 } }, T0)).toMatchObject({ kind: 'cool', scope: 'key' });
  });
});
