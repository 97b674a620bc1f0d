/**
 * Reading OpenRouter's answers: a pure function from (status, headers, body, now) to what must happen.
 * The scope of a 429 decides what cools (docs/design.md#the-outcome-table, "429 bodies seen in real use").
 */
import { nextMinute, nextUtcMidnight, nextUtcMonday, nextUtcMonth, resetsInMessage } from './windows';

export { resetsInMessage } from './windows';

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

export type DisableReason = 'invalid_key' | 'insufficient_credits' | 'key_limit';

/** The limit a request is too large for (a 402/403 that names the request's own size). */
export interface RequestLimit {
  /** prompt_tokens ("Prompt tokens limit exceeded: X > Y"), max_tokens ("max_tokens limit exceeded: X > Y"), affordable_tokens ("can only afford N"). */
  name: 'prompt_tokens' | 'max_tokens' | 'affordable_tokens';
  requested: number | null;
  allowed: number;
}

export type Outcome =
  | (OutcomeBase & { kind: 'success'; body: unknown })
  | (OutcomeBase & { kind: 'cool'; scope: CoolScope; until?: number; reason: string; message: string })
  | (OutcomeBase & { kind: 'congested'; until?: number; reason: string; message: string })
  /** An edge (Cloudflare) limit on this host: no key is at fault; every provider backs off together. */
  | (OutcomeBase & { kind: 'edge'; until?: number; reason: string; message: string })
  /** `accountWide`: every key of the key's account is disabled with it (402: the account's credits are gone). */
  | (OutcomeBase & { kind: 'disable'; reason: DisableReason; message: string; accountWide?: boolean })
  | (OutcomeBase & { kind: 'retry'; reason: string; message: string })
  /**
   * The request's own fault (a 400, a moderation 403, a 404 for a wrong path), or the client's going (499):
   * no key is at fault. `limit`: the request is larger than a limit of the key or the account allows
   * (reason `request_exceeds_limit`).
   */
  | (OutcomeBase & { kind: 'client_error'; reason: string; message: string; body: unknown; limit?: RequestLimit })
  /**
   * An answer no key could serve, and no fault of the request either: this model has no endpoint for it
   * (a 404 that falls back), an answer over ORCHE_MAX_UPSTREAM_BYTES, a stream past ORCHE_MAX_STREAM_MS.
   */
  | (OutcomeBase & { kind: 'unservable'; reason: string; message: string; body: unknown });

export type OutcomeKind = Outcome['kind'];

/** The request's own fault or an answer no key could serve: nothing counts against the key. */
export function blamesNoKey(outcome: Outcome): outcome is Extract<Outcome, { kind: 'client_error' | 'unservable' }> {
  return outcome.kind === 'client_error' || outcome.kind === 'unservable';
}
export type Headers = Record<string, string | string[] | undefined>;

interface ErrorObject {
  code?: unknown;
  /** Some answers carry the status here instead of in `code`. */
  http_status?: unknown;
  status?: unknown;
  message?: unknown;
  metadata?: Record<string, unknown>;
  availability?: Record<string, unknown>;
}

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

/** How deep `{"error":{"error":{…}}}` is unwrapped; real answers nest once or twice. */
/**
 * How long model congestion or an edge (Cloudflare 1015) hold lasts when the answer names no
 * Retry-After: both are upstream's and rarely say, and clear within seconds. The one short default:
 * the key pool holds for it, and the dispatcher's Retry-After says it.
 */
export const NO_HINT_HOLD_MS = 5000;

const MAX_NESTING = 4;

/** `{"error":{"error":{…}}}` → the innermost error object; a bare string becomes `{message}`. */
function errorFrom(value: unknown): ErrorObject | undefined {
  let v = value;
  for (let depth = 0; depth < MAX_NESTING; depth++) {
    if (typeof v === 'string') return v.trim() ? { message: v } : undefined;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
    const e = v as ErrorObject & { error?: unknown };
    if (e.error !== undefined && e.error !== null && e.message === undefined) {
      v = e.error;
      continue;
    }
    return e;
  }
  return undefined;
}

/**
 * The error an answer carries: a top-level `error` (an object, nested objects, or a bare string), or
 * `choices[0].error`; a choice that ended with `finish_reason` / `native_finish_reason` "error" and no
 * error object is a failure too (docs/design.md#reading-an-answer).
 */
export function carriedError(body: unknown): ErrorObject | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as { error?: unknown; choices?: unknown };
  if (b.error !== undefined && b.error !== null) {
    const e = errorFrom(b.error);
    if (e) return e;
  }
  if (Array.isArray(b.choices) && b.choices.length > 0) {
    const c = b.choices[0] as { finish_reason?: unknown; native_finish_reason?: unknown; error?: unknown };
    if (c && (c.finish_reason === 'error' || c.native_finish_reason === 'error')) {
      return errorFrom(c.error) ?? { message: 'Upstream ended the answer with finish_reason "error"' };
    }
  }
  return undefined;
}

/** The status an error carries: `code`, else `http_status`, else `status`, as a number or a string. */
function statusOf(error: ErrorObject, fallback: number): number {
  for (const value of [error.code, error.http_status, error.status]) {
    const code = typeof value === 'string' && /^\d{3}$/.test(value.trim()) ? Number(value) : value;
    if (typeof code === 'number' && Number.isInteger(code) && code >= 400 && code <= 599) return code;
  }
  return fallback;
}

/** Cloudflare's own rate limit in front of the host ("error code: 1015", or its HTML page). */
const EDGE_TEXT = /error(?: code:?)?\s*1015\b/i;
const UPSTREAM_CONGESTED = /temporarily rate-limited upstream/i;

function isEdgePage(body: unknown): boolean {
  return typeof body === 'string' && (EDGE_TEXT.test(body) || /^\s*</.test(body));
}

function classify429(error: ErrorObject, headers: Headers, body: unknown, base: OutcomeBase, now: number): Outcome {
  const message = text(error.message) || 'Rate limit exceeded';
  const meta = error.metadata ?? {};
  const source = text(meta.limit_source);
  const until = resetTime(headers, error, now);
  // Not JSON at all (an HTML page, "error code: 1015"), or OpenRouter relaying that text as its own
  // message: the edge in front of this host limits every key alike (docs/design.md#the-outcome-table). The same text inside a
  // provider's `raw` is that provider's edge, handled as upstream congestion below.
  if (isEdgePage(body) || (EDGE_TEXT.test(message) && meta.provider_name == null)) {
    return { ...base, kind: 'edge', until, reason: 'edge_rate_limited', message: EDGE_TEXT.test(message) ? message : 'Upstream edge answered 429 (rate limited)' };
  }
  const free = /free-models-per-(min|day(-high-balance)?)/.exec(message);
  if (free || source === 'openrouter_free_tier_daily') {
    const reason = free ? free[0] : 'free-models-per-day';
    // Free-tier windows are known even when the answer omits the reset: the next minute, or 00:00 UTC.
    const known = reason === 'free-models-per-min' ? nextMinute(now) : nextUtcMidnight(now);
    return { ...base, kind: 'cool', scope: 'account_free', until: until ?? known, reason, message };
  }
  const perModel = /limit_rp([md])\//.exec(message);
  if (perModel || source === 'openrouter_shared_capacity') {
    // With no reset sent, the cap's own window: a day (limit_rpd, "daily limit") ends at 00:00 UTC,
    // a minute (limit_rpm, or a shared-capacity cap that names no window) at the next whole minute.
    const daily = perModel?.[1] === 'd' || /daily limit/i.test(message);
    return { ...base, kind: 'cool', scope: 'account_model', until: until ?? (daily ? nextUtcMidnight(now) : nextMinute(now)), reason: 'model_cap', message };
  }
  const availability = (error.availability ?? meta.availability) as Record<string, unknown> | undefined;
  if (availability?.code === 'capacity_exhausted' || /at capacity/i.test(message) || source === 'capacity_exhausted') {
    return { ...base, kind: 'congested', until, reason: 'capacity_exhausted', message };
  }
  if (/provider returned error/i.test(message) && meta.provider_name != null) {
    return { ...base, kind: 'congested', until, reason: 'upstream_rate_limited', message: text(meta.raw) || message };
  }
  // A provider's own limit ("Upstream error from Nvidia: ResourceExhausted: Worker local total request
  // limit reached (16/16)", a provider's concurrency cap): the model's provider is full, whichever key
  // asks (docs/design.md#blame-on-evidence).
  if (PROVIDER_LIMIT.test(message)) {
    return { ...base, kind: 'congested', until, reason: 'upstream_provider_limit', message };
  }
  return { ...base, kind: 'cool', scope: 'key', until, reason: 'rate_limited', message };
}

/**
 * The key's own credit cap ("Key limit exceeded (total|daily|weekly|monthly limit)", OpenRouter's
 * per-key `limit` and `limit_reset`): total → disabled; a resetting one → cooling until its reset.
 */
function keyLimit(message: string, headers: Headers, error: ErrorObject, base: OutcomeBase, now: number): Outcome {
  const window = /\((daily|weekly|monthly|total) limit\)|\b(daily|weekly|monthly) limit\b/i.exec(message);
  const kind = (window?.[1] ?? window?.[2])?.toLowerCase();
  const until =
    resetsInMessage(message, now) ??
    resetTime(headers, error, now) ??
    (kind === 'daily' ? nextUtcMidnight(now) : kind === 'weekly' ? nextUtcMonday(now) : kind === 'monthly' ? nextUtcMonth(now) : undefined);
  if (until === undefined) return { ...base, kind: 'disable', reason: 'key_limit', message };
  return { ...base, kind: 'cool', scope: 'key', until, reason: 'key_cap', message };
}

const KEY_LIMIT = /key limit exceeded|create a key with a higher/i;
/** A provider's own capacity named in a 429 (docs/design.md#blame-on-evidence): "Upstream error from <provider>: …", worker or concurrency limits. */
const PROVIDER_LIMIT = /upstream error from [^:]+:|worker local total request limit|resourceexhausted|concurrency limit/i;
/** The account's balance is gone (docs/design.md#blame-on-evidence): only these disable every key of the account. */
const BALANCE_GONE = /insufficient credits|negative (credit )?balance|never purchased credits/i;

/**
 * A 402/403 that names the request's own size against a limit of the key or the account: "Prompt tokens
 * limit exceeded: 329159 > 168823", "max_tokens limit exceeded: 100000 > 9577 … create a key with a higher
 * limit", "You requested up to 64000 tokens, but can only afford 2666". The request is too big, not the
 * key or the account spent: a smaller request is served (docs/design.md#blame-on-evidence). "can only afford 0" is not about size.
 */
export function requestLimitOf(message: string): RequestLimit | undefined {
  const named = /\b(prompt tokens|max_tokens) limit exceeded:\s*(\d+)\s*>\s*(\d+)/i.exec(message);
  if (named) return { name: /prompt/i.test(named[1]) ? 'prompt_tokens' : 'max_tokens', requested: Number(named[2]), allowed: Number(named[3]) };
  const afford = /can only afford (\d+)/i.exec(message);
  if (afford && Number(afford[1]) > 0) {
    const requested = /requested up to (\d+)/i.exec(message);
    return { name: 'affordable_tokens', requested: requested ? Number(requested[1]) : null, allowed: Number(afford[1]) };
  }
  return undefined;
}

/**
 * A 401 or 403 that a provider behind OpenRouter answered, relayed ("Provider returned error", or a
 * `provider_name`): the provider's own credentials or rules failed, not our key (docs/design.md#blame-on-evidence). A BYOK
 * answer (`is_byok: true`, the account's own provider key) and a moderation refusal are not this.
 */
function relayedFromProvider(message: string, meta: Record<string, unknown>): boolean {
  if (meta.is_byok === true) return false;
  if (meta.reasons !== undefined || meta.flagged_input !== undefined || /flagged/i.test(message)) return false;
  return /provider returned error/i.test(message) || (typeof meta.provider_name === 'string' && meta.provider_name !== '');
}
/** OpenRouter's 404s about the model's endpoints (tests/fixtures/openrouter/404-*.json). */
const MODEL_UNAVAILABLE = /no endpoints found|no allowed providers|\bfree\b.*\bperiod has ended\b/i;

function classifyError(status: number, error: ErrorObject, headers: Headers, body: unknown, base: OutcomeBase, now: number): Outcome {
  const message = text(error.message) || `Upstream answered ${status}`;
  const meta = error.metadata ?? {};
  const source = text(meta.limit_source);
  // The provider behind OpenRouter is out of capacity, whatever status and field carry it: no key is at fault.
  if (source === 'upstream_provider_shared_pool' || UPSTREAM_CONGESTED.test(message) || UPSTREAM_CONGESTED.test(text(meta.raw))) {
    return { ...base, kind: 'congested', until: resetTime(headers, error, now), reason: 'upstream_rate_limited', message: UPSTREAM_CONGESTED.test(message) ? message : text(meta.raw) || message };
  }
  if (status === 429) return classify429(error, headers, body, base, now);
  // The provider's failure, relayed: no key changes; the request moves on as for a 5xx.
  if ((status === 401 || status === 403) && relayedFromProvider(message, meta)) {
    return { ...base, kind: 'retry', reason: `provider_${status}`, message: text(meta.raw) || message };
  }
  // A 401 from OpenRouter itself; the dispatcher asks GET /key before it disables (keyCheck.ts).
  if (status === 401) return { ...base, kind: 'disable', reason: 'invalid_key', message };
  if (status === 402 || status === 403) {
    // The request is larger than the key's or the account's limit: the client's to fix, nothing changes.
    const limit = requestLimitOf(message);
    if (limit) return { ...base, kind: 'client_error', reason: 'request_exceeds_limit', message, body, limit };
  }
  if (status === 402) {
    // OpenRouter's in-flight budget: a 402 with Retry-After is "too much spending in flight", not empty credits.
    const inFlight = source === 'openrouter_in_flight_budget' || meta.reason === 'in_flight_budget_exhausted' || /in-flight requests/i.test(message);
    if (header(headers, 'Retry-After') !== undefined || inFlight) {
      return { ...base, kind: 'cool', scope: 'account', until: resetTime(headers, error, now), reason: 'in_flight_budget', message };
    }
    if (KEY_LIMIT.test(message)) return keyLimit(message, headers, error, base, now);
    // The account's balance is gone ("Insufficient credits", "never purchased credits", "can only afford 0"
    // with nothing left): every key of the account fails alike, so all are disabled at once.
    if (BALANCE_GONE.test(message) || /can only afford 0\b/i.test(message)) {
      return { ...base, kind: 'disable', reason: 'insufficient_credits', message, accountWide: true };
    }
    // A 402 that names no cause: charged to the narrowest scope, this key, for a cooldown (docs/design.md#blame-on-evidence).
    return { ...base, kind: 'cool', scope: 'key', until: resetTime(headers, error, now), reason: 'payment_required', message };
  }
  if (status === 403 && KEY_LIMIT.test(message)) return keyLimit(message, headers, error, base, now);
  if (status === 403 && source) {
    return { ...base, kind: 'cool', scope: 'key', until: resetTime(headers, error, now), reason: 'key_cap', message };
  }
  // No endpoint of this model can serve this request: the model or its :free variant is gone, the
  // account's provider settings allow none of its providers, or none supports the request's tools.
  // No key is at fault; another model may serve it, so the dispatcher falls back when it can.
  if (status === 404 && MODEL_UNAVAILABLE.test(message)) return { ...base, kind: 'unservable', reason: 'model_unavailable', message, body };
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
