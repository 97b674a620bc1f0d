import { capRelayed } from './upstream/relayed';

/**
 * The errors orche answers with. Route handlers and the dispatcher throw these; one Express handler
 * turns them into orche's error body `{error:{code,type,message,...extra}}` (`errorBody`).
 */
export class OrcheError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends OrcheError {
  constructor(message: string, details: unknown) {
    super(400, 'invalid_request', message, { details });
  }
}

export class UnknownProviderError extends OrcheError {
  constructor(name: string, valid: string[]) {
    // A client's unknown name is named back only in part.
    const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name;
    super(404, 'unknown_provider', `Unknown provider "${shown}". Valid providers: ${valid.join(', ')}`, { provider: shown, valid_providers: valid });
  }
}

export type ErrorObject = { code: number; type: string; message: string } & Record<string, unknown>;

/**
 * The orche's error object, built here only: what `errorBody` wraps, and what a fan-out leg that
 * failed carries (code, type and message: the leg's other fields name the provider and attempts).
 */
export function errorObject(status: number, type: string, message: string, extra: Record<string, unknown> = {}): ErrorObject {
  return { code: status, type, message, ...extra };
}

/** An error as orche's error body. */
export function errorBody(err: OrcheError): { error: ErrorObject } {
  return { error: errorObject(err.status, err.type, err.message, err.extra) };
}

/** A wait as the whole seconds of a Retry-After header: rounded up, never 0 (a client would retry at once). */
export function retryAfterSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function retryHeaders(retryAfterMs: number): Record<string, string> {
  return { 'Retry-After': String(retryAfterSeconds(retryAfterMs)) };
}

export class AllKeysRateLimitedError extends OrcheError {
  constructor(provider: string, retryAfterMs: number, reason: string) {
    super(
      429,
      'all_keys_rate_limited',
      `Every key of ${provider} is rate-limited (${reason}); retry in ${retryAfterSeconds(retryAfterMs)} s`,
      { provider, retry_after_ms: retryAfterMs },
      retryHeaders(retryAfterMs),
    );
  }
}

export class UpstreamRateLimitedError extends OrcheError {
  constructor(provider: string, retryAfterMs: number, upstreamMessage: string) {
    super(
      429,
      'upstream_rate_limited',
      `The model of ${provider} is rate-limited upstream (no key is at fault); retry in ${retryAfterSeconds(retryAfterMs)} s`,
      { provider, retry_after_ms: retryAfterMs, upstream_message: capRelayed(upstreamMessage) },
      retryHeaders(retryAfterMs),
    );
  }
}

/** The edge (Cloudflare) in front of the upstream limits this host: no key and no fallback would help. */
export class EdgeRateLimitedError extends OrcheError {
  constructor(provider: string, retryAfterMs: number) {
    super(
      429,
      'upstream_edge_rate_limited',
      `The upstream's edge is rate-limiting this host (every provider waits, no key is at fault); retry in ${retryAfterSeconds(retryAfterMs)} s`,
      { provider, retry_after_ms: retryAfterMs },
      retryHeaders(retryAfterMs),
    );
  }
}

export class NoUsableKeysError extends OrcheError {
  constructor(provider: string, unconfigured: boolean) {
    super(
      503,
      unconfigured ? 'provider_unconfigured' : 'no_usable_keys',
      unconfigured
        ? `Provider ${provider} has no keys configured: set PROVIDER_${provider.toUpperCase()}_API_KEY`
        : `Every key of ${provider} is disabled; reactivate one with POST /api/keys/:id/reactivate or add keys`,
      { provider },
    );
  }
}

export class UpstreamError extends OrcheError {
  constructor(provider: string, upstreamStatus: number, upstreamMessage: string, attempts: number) {
    super(502, 'upstream_error', `${provider} failed after ${attempts} attempt(s): upstream answered ${upstreamStatus}`, {
      provider,
      upstream_status: upstreamStatus,
      upstream_message: capRelayed(upstreamMessage),
      attempts,
    });
  }
}

export class UpstreamTimeoutError extends OrcheError {
  constructor(provider: string, attempts: number, message: string) {
    super(504, 'upstream_timeout', `${provider} did not answer in time after ${attempts} attempt(s)`, { provider, attempts, upstream_message: capRelayed(message) });
  }
}

/**
 * The request is larger than a limit of the key or the account allows ("Prompt tokens limit exceeded:
 * X > Y", "max_tokens limit exceeded: X > Y", "can only afford N"): the client's to fix with a shorter
 * prompt or a lower max_tokens. No key or account changed (docs/design.md#blame-on-evidence). The status is the upstream's (402/403).
 */
export class RequestExceedsLimitError extends OrcheError {
  constructor(provider: string, status: number, limit: { name: string; requested: number | null; allowed: number }, upstreamMessage: string) {
    const asked = limit.requested === null ? '' : ` (${limit.requested} > ${limit.allowed})`;
    super(
      status,
      'request_exceeds_limit',
      `${provider}: the request is larger than the key's or account's limit allows: ${limit.name}${asked}; send a shorter prompt or a lower max_tokens`,
      { provider, limit: { name: limit.name, requested: limit.requested, allowed: limit.allowed }, upstream_message: capRelayed(upstreamMessage) },
    );
  }
}

/** Error types that keep their outcome's reason; any other rejection is `upstream_rejected`. */
const OWN_TYPES = new Set(['moderation', 'upstream_too_large']);

/**
 * The upstream refused the request itself (bad request, moderation, unknown model): the client's to
 * fix; or answered more than ORCHE_MAX_UPSTREAM_BYTES (502 upstream_too_large), which no retry fixes.
 */
export class UpstreamRejectedError extends OrcheError {
  constructor(provider: string, status: number, reason: string, upstreamMessage: string) {
    super(status, OWN_TYPES.has(reason) ? reason : 'upstream_rejected', `${provider}: ${capRelayed(upstreamMessage)}`, { provider });
  }
}
