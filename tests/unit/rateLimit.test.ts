/**
 * classifyResponse(status, headers, body, now): every answer OpenRouter gives (OPENROUTER.md), classified
 * exactly, with a fixed clock.
 */
import { classifyResponse, failureOutcome, parseResetEpoch, parseRetryAfter } from '../../providers/rateLimit';
import { NEXT_MIDNIGHT, NEXT_MINUTE, T0 } from './poolFixtures';

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
