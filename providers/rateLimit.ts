/**
 * Reading OpenRouter's answers: a pure function from (status, headers, body, now) to what must happen.
 * The scope of a 429 decides what cools (OPENROUTER.md, "429 bodies seen in real use").
 */

export type CoolScope =
  /** The key alone. */
  | 'key'
  /** The key's whole account, for every model (OpenRouter's in-flight budget 402). */
  | 'account'
  /** The key's account, for `:free` models only (free-models-per-min / per-day). */
  | 'account_free'
  /** The account for this one model (OpenRouter's per-model platform cap). */
  | 'account_model';

export interface RateInfo {
  limit?: number;
  remaining?: number;
  resetAt?: number;
}

interface OutcomeBase {
  status: number;
  /** The account that owns the key, from the top-level `user_id` of an error body. */
  userId?: string;
  rate?: RateInfo;
}

export type Outcome =
  | (OutcomeBase & { kind: 'success'; body: unknown })
  | (OutcomeBase & { kind: 'cool'; scope: CoolScope; until?: number; reason: string; message: string })
  | (OutcomeBase & { kind: 'congested'; until?: number; reason: string; message: string })
  | (OutcomeBase & { kind: 'disable'; reason: 'invalid_key' | 'insufficient_credits'; message: string })
  | (OutcomeBase & { kind: 'retry'; reason: string; message: string })
  | (OutcomeBase & { kind: 'client_error'; reason: string; message: string; body: unknown });

export type OutcomeKind = Outcome['kind'];
export type Headers = Record<string, string | string[] | undefined>;

interface ErrorObject {
  code?: unknown;
  message?: unknown;
  metadata?: Record<string, unknown>;
  availability?: Record<string, unknown>;
}

const MINUTE = 60_000;

function header(headers: Headers | Record<string, unknown> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const direct = headers[name] ?? headers[name.toLowerCase()];
  let value: unknown = direct;
  if (value === undefined) {
    const lower = name.toLowerCase();
    for (const k of Object.keys(headers)) if (k.toLowerCase() === lower) value = headers[k];
  }
  if (Array.isArray(value)) value = value[0];
  if (typeof value === 'number') return String(value);
  return typeof value === 'string' ? value : undefined;
}

/** `Retry-After`: seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return now + Math.ceil(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : date;
}

/** `X-RateLimit-Reset`: epoch milliseconds on OpenRouter; a value below 10^12 is epoch seconds, below 10^9 a delay in seconds. */
export function parseResetEpoch(value: unknown, now: number): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'string' && !/^\d+(\.\d+)?$/.test(value.trim())) {
    const date = Date.parse(value);
    return Number.isNaN(date) ? undefined : date;
  }
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) return undefined;
  // Deadlines are whole milliseconds, rounded up (a fraction would reach Redis's PEXPIRE).
  if (n >= 1e12) return Math.ceil(n);
  if (n >= 1e9) return Math.ceil(n * 1000);
  return now + Math.ceil(n * 1000);
}

function num(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** Limit/remaining/reset from the response headers, else from `error.metadata.headers`. */
export function readRateInfo(headers: Headers, error: ErrorObject | undefined, now: number): RateInfo | undefined {
  const meta = error?.metadata?.headers as Record<string, unknown> | undefined;
  const get = (name: string) => header(headers, name) ?? header(meta, name);
  const info: RateInfo = {
    limit: num(get('X-RateLimit-Limit')),
    remaining: num(get('X-RateLimit-Remaining')),
    resetAt: parseResetEpoch(get('X-RateLimit-Reset'), now),
  };
  return info.limit === undefined && info.remaining === undefined && info.resetAt === undefined ? undefined : info;
}

/** The latest of every reset hint the answer carries; undefined when it carries none. */
export function resetTime(headers: Headers, error: ErrorObject | undefined, now: number): number | undefined {
  const meta = error?.metadata ?? {};
  const metaHeaders = meta.headers as Record<string, unknown> | undefined;
  const candidates = [
    parseRetryAfter(header(headers, 'Retry-After'), now),
    parseRetryAfter(header(metaHeaders, 'Retry-After'), now),
    parseResetEpoch(header(headers, 'X-RateLimit-Reset'), now),
    parseResetEpoch(header(metaHeaders, 'X-RateLimit-Reset'), now),
    typeof meta.retry_after_seconds === 'number' ? now + Math.ceil(meta.retry_after_seconds * 1000) : undefined,
    typeof error?.availability?.retry_after === 'number' ? now + Math.ceil((error.availability.retry_after as number) * 1000) : undefined,
    parseResetEpoch(meta.resets_at, now),
  ].filter((t): t is number => t !== undefined && t > now);
  return candidates.length ? Math.max(...candidates) : undefined;
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined || value === null) return '';
  try {
    return JSON.stringify(value);
  } catch {
    return '';
  }
}

/** The error an answer carries: top-level `error`, or `choices[0].error` with finish_reason "error". */
export function carriedError(body: unknown): ErrorObject | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as { error?: unknown; choices?: unknown };
  if (b.error && typeof b.error === 'object') return b.error as ErrorObject;
  if (Array.isArray(b.choices) && b.choices.length > 0) {
    const c = b.choices[0] as { finish_reason?: unknown; error?: unknown };
    if (c && c.finish_reason === 'error' && c.error && typeof c.error === 'object') return c.error as ErrorObject;
  }
  return undefined;
}

function statusOf(error: ErrorObject, fallback: number): number {
  const code = typeof error.code === 'string' ? Number(error.code) : error.code;
  return typeof code === 'number' && Number.isInteger(code) && code >= 400 && code <= 599 ? code : fallback;
}

function nextMinute(now: number): number {
  return (Math.floor(now / MINUTE) + 1) * MINUTE;
}

function nextUtcMidnight(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

function classify429(error: ErrorObject, headers: Headers, base: OutcomeBase, now: number): Outcome {
  const message = text(error.message) || 'Rate limit exceeded';
  const meta = error.metadata ?? {};
  const source = text(meta.limit_source);
  const raw = text(meta.raw);
  const until = resetTime(headers, error, now);
  const free = /free-models-per-(min|day(-high-balance)?)/.exec(message);
  if (free || source === 'openrouter_free_tier_daily') {
    const reason = free ? free[0] : 'free-models-per-day';
    // Free-tier windows are known even when the answer omits the reset: the next minute, or 00:00 UTC.
    const known = reason === 'free-models-per-min' ? nextMinute(now) : nextUtcMidnight(now);
    return { ...base, kind: 'cool', scope: 'account_free', until: until ?? known, reason, message };
  }
  if (/limit_rp[md]\//.test(message) || source === 'openrouter_shared_capacity') {
    return { ...base, kind: 'cool', scope: 'account_model', until, reason: 'model_cap', message };
  }
  const availability = (error.availability ?? meta.availability) as Record<string, unknown> | undefined;
  if (availability?.code === 'capacity_exhausted' || /at capacity/i.test(message) || source === 'capacity_exhausted') {
    return { ...base, kind: 'congested', until, reason: 'capacity_exhausted', message };
  }
  const upstream =
    source === 'upstream_provider_shared_pool' ||
    /rate-limited upstream/i.test(raw) ||
    (/provider returned error/i.test(message) && meta.provider_name != null);
  if (upstream) return { ...base, kind: 'congested', until, reason: 'upstream_rate_limited', message: raw || message };
  return { ...base, kind: 'cool', scope: 'key', until, reason: 'rate_limited', message };
}

function classifyError(status: number, error: ErrorObject, headers: Headers, body: unknown, base: OutcomeBase, now: number): Outcome {
  const message = text(error.message) || `Upstream answered ${status}`;
  const meta = error.metadata ?? {};
  const source = text(meta.limit_source);
  if (status === 429) return classify429(error, headers, base, now);
  if (status === 401) return { ...base, kind: 'disable', reason: 'invalid_key', message };
  if (status === 402) {
    // OpenRouter's in-flight budget: a 402 with Retry-After is "too much spending in flight", not empty credits.
    if (header(headers, 'Retry-After') !== undefined || source === 'openrouter_in_flight_budget') {
      return { ...base, kind: 'cool', scope: 'account', until: resetTime(headers, error, now), reason: 'in_flight_budget', message };
    }
    return { ...base, kind: 'disable', reason: 'insufficient_credits', message };
  }
  if (status === 403 && source) {
    return { ...base, kind: 'cool', scope: 'key', until: resetTime(headers, error, now), reason: 'key_cap', message };
  }
  if (status === 408 || status >= 500) return { ...base, kind: 'retry', reason: `upstream_${status}`, message };
  return { ...base, kind: 'client_error', reason: status === 403 ? 'moderation' : `upstream_${status}`, message, body };
}

/**
 * Classifies one upstream answer. `body` is the parsed JSON (or undefined / raw text when it was not JSON).
 * An error carried inside a 200 is treated exactly like the status it carries.
 */
export function classifyResponse(status: number, headers: Headers, body: unknown, now: number): Outcome {
  const userId = body && typeof body === 'object' && typeof (body as { user_id?: unknown }).user_id === 'string'
    ? ((body as { user_id: string }).user_id)
    : undefined;
  const error = carriedError(body);
  const base: OutcomeBase = { status, userId, rate: readRateInfo(headers, error, now) };
  if (status >= 200 && status < 300) {
    if (error) return classifyError(statusOf(error, 502), error, headers, body, { ...base, status: statusOf(error, 502) }, now);
    if (!body || typeof body !== 'object') {
      return { ...base, kind: 'retry', status: 502, reason: 'bad_upstream_body', message: 'Upstream answered 200 with a body that is not JSON' };
    }
    return { ...base, kind: 'success', body };
  }
  if (error) return classifyError(status, error, headers, body, base, now);
  const message = typeof body === 'string' && body.trim() && !/^\s*</.test(body) ? body.trim().slice(0, 200) : `Upstream answered ${status}`;
  return classifyError(status, { message }, headers, body, base, now);
}

/** A call that got no answer: timeout or network failure; retried with backoff. */
export function failureOutcome(reason: 'timeout' | 'network', message: string): Outcome {
  return { kind: 'retry', status: reason === 'timeout' ? 504 : 502, reason, message };
}
