/** Fault rules: which call a rule hits, and the OpenRouter-shaped answer of each JSON fault. */
import { randomUUID } from 'node:crypto';
import { nextUtcDay } from './limits';
import type { AccountState, KeyState } from './registry';
import { errorBody, type Headers, limitReply, promptTokens, rateLimitHeaders, type Reply, retryAfterSeconds } from './responses';
import type { FaultRule, FaultType } from './types';

/** Faults answered by the transport rather than by a JSON error body. */
export type TransportFault = 'hang' | 'garbage' | 'truncated' | 'reset' | 'delay' | 'gate' | 'stream-error' | 'stream-open-error' | 'edge-1015';
const TRANSPORT: ReadonlySet<FaultType> = new Set<FaultType>(['hang', 'garbage', 'truncated', 'reset', 'delay', 'gate', 'stream-error', 'stream-open-error', 'edge-1015']);

/** Faults that exist only for streams; other calls pass the rule by. */
const STREAM_ONLY: ReadonlySet<FaultType> = new Set<FaultType>(['stream-error', 'stream-open-error', 'gate']);

export function isTransportFault(type: FaultType): type is TransportFault {
  return TRANSPORT.has(type);
}

interface ActiveRule { rule: FaultRule; remaining: number }

/** Rules in insertion order; the first that matches with times remaining is used up by one. */
export class RuleBook {
  private rules: ActiveRule[] = [];

  add(rule: FaultRule): void {
    this.rules.push({ rule: { ...rule }, remaining: rule.times ?? Infinity });
  }

  clear(): void {
    this.rules = [];
  }

  get size(): number {
    return this.rules.length;
  }

  /** `body`: the parsed request, for rules that match what it asks (its size, its `provider.only`). */
  take(key: KeyState, model: string, stream: boolean, body?: unknown): FaultRule | undefined {
    for (const active of this.rules) {
      if (active.remaining <= 0) continue;
      const { rule } = active;
      const m = rule.match;
      if (m !== undefined) {
        if (m.key !== undefined && m.key !== key.key && m.key !== key.id) continue;
        if (m.account !== undefined && m.account !== key.account.id) continue;
        if (m.model !== undefined && m.model !== model) continue;
        if (m.provider !== undefined && !onlyProviders(body).includes(m.provider)) continue;
      }
      // A mid-stream error only exists for streams; other calls pass the rule by.
      if (STREAM_ONLY.has(rule.type) && !stream) continue;
      // A request within the limits is not too large.
      if (rule.type === 'request-too-large' && tooLarge(rule, body) === undefined) continue;
      // A random fault: the rule applies to this share of the calls it matches.
      if (rule.probability !== undefined && Math.random() >= rule.probability) continue;
      active.remaining--;
      return rule;
    }
    return undefined;
  }
}

/** The providers a request's `provider.only` names (OpenRouter's provider routing object). */
function onlyProviders(body: unknown): string[] {
  const only = (body as { provider?: { only?: unknown } } | undefined)?.provider?.only;
  return Array.isArray(only) ? only.filter((p): p is string => typeof p === 'string') : [];
}

/** OpenRouter's 402 texts for a request too large for the key's or account's limit (continue#11227, cline#940). */
function tooLarge(rule: FaultRule, body: unknown): string | undefined {
  const prompt = promptTokens(body);
  if (rule.promptTokenLimit !== undefined && prompt > rule.promptTokenLimit) {
    return `Prompt tokens limit exceeded: ${prompt} > ${rule.promptTokenLimit}. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account`;
  }
  const maxTokens = (body as { max_tokens?: unknown } | undefined)?.max_tokens;
  if (rule.maxTokensLimit !== undefined && typeof maxTokens === 'number' && maxTokens > rule.maxTokensLimit) {
    return `max_tokens limit exceeded: ${maxTokens} > ${rule.maxTokensLimit}. To increase, visit https://openrouter.ai/keys and create a key with a higher limit`;
  }
  return undefined;
}

export interface FaultContext {
  body?: unknown;
  model: string;
  account: AccountState;
  now: number;
  /** SimulatorOptions.retryAfter: Retry-After on OpenRouter-own 429s. */
  retryAfter: boolean;
}

const DEFAULT_MESSAGES: Record<number, string> = {
  400: 'Bad Request',
  401: 'User not found.',
  402: 'Insufficient credits. Add more using https://openrouter.ai/settings/credits',
  403: 'Forbidden',
  404: 'No endpoints found for this model',
  408: 'Timed out',
  429: 'Rate limit exceeded',
  500: 'Internal Server Error',
  502: 'Provider returned error',
  503: 'No available providers',
  524: 'Provider timed out',
  529: 'Provider returned error',
};

/** OpenRouter's text for a provider out of capacity (docs/design.md#the-outcome-table 429 #4), here as the error's own message. */
export function upstreamCongestionMessage(model: string): string {
  return `${model} is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations`;
}

export function keyLimitMessage(window: 'total' | 'daily' | 'weekly' | 'monthly'): string {
  return `Key limit exceeded (${window} limit). Manage it using https://openrouter.ai/settings/keys`;
}

/** What Cloudflare answers an API client it rate-limits (its "1015"), as plain text. */
export const EDGE_1015_TEXT = 'error code: 1015';

export function defaultMessage(status: number): string {
  return DEFAULT_MESSAGES[status] ?? 'Provider returned error';
}

/** The answer of a JSON fault (every type except the transport ones). */
export function faultReply(rule: FaultRule, ctx: FaultContext): Reply {
  const reply = baseFaultReply(rule, ctx);
  if (rule.headers !== undefined) Object.assign(reply.headers, rule.headers);
  return reply;
}

function ownRetryAfter(rule: FaultRule, ctx: FaultContext, resetAt: number, headers: Headers): void {
  if (rule.retryAfterSeconds !== undefined) headers['Retry-After'] = String(rule.retryAfterSeconds);
  else if (ctx.retryAfter) headers['Retry-After'] = retryAfterSeconds(resetAt, ctx.now);
}

function withMetadata(base: Record<string, unknown>, rule: FaultRule): Record<string, unknown> {
  return rule.metadata === undefined ? base : { ...base, ...rule.metadata };
}

function reply(status: number, rule: FaultRule, message: string, metadata: Record<string, unknown> | undefined, ctx: FaultContext, headers: Headers = {}, extra?: Record<string, unknown>): Reply {
  const meta = metadata === undefined ? rule.metadata : withMetadata(metadata, rule);
  return { status, headers, body: errorBody(status, rule.message ?? message, meta, ctx.account.id, extra), outcome: rule.type };
}

function baseFaultReply(rule: FaultRule, ctx: FaultContext): Reply {
  const { model, account, now } = ctx;
  switch (rule.type) {
    case 'free-per-min':
    case 'free-per-day': {
      const perMin = rule.type === 'free-per-min';
      const hit = perMin
        ? { outcome: rule.type, limit: account.freeRpm, resetAt: account.counter.nextReset(now) }
        : { outcome: rule.type, limit: account.freeRpd, resetAt: nextUtcDay(now) };
      const r = limitReply(hit, account.id, account.highBalance);
      ownRetryAfter(rule, ctx, hit.resetAt, r.headers);
      if (rule.message !== undefined || rule.metadata !== undefined) {
        const parsed = JSON.parse(r.body) as { error: { message: string; metadata: Record<string, unknown> } };
        r.body = errorBody(429, rule.message ?? parsed.error.message, withMetadata(parsed.error.metadata, rule), account.id);
      }
      return r;
    }
    case 'model-cap': {
      const resetAt = account.counter.nextReset(now);
      const headers = rateLimitHeaders(8, resetAt);
      const message = `Rate limit exceeded: limit_rpm/${model}/${randomUUID()}. High demand for ${model} on OpenRouter - limited to 8 requests per minute. Please retry shortly.`;
      const r = reply(429, rule, message, { headers: { ...headers }, provider_name: null, limit_source: 'openrouter_shared_capacity' }, ctx, headers);
      ownRetryAfter(rule, ctx, resetAt, r.headers);
      return r;
    }
    case 'upstream-429': {
      const metadata: Record<string, unknown> = {
        provider_name: 'SimUpstream',
        raw: `${model} is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations`,
        limit_source: 'upstream_provider_shared_pool',
        error_type: 'rate_limit_exceeded',
      };
      if (rule.retryAfterSeconds !== undefined) metadata.retry_after_seconds = rule.retryAfterSeconds;
      return reply(429, rule, 'Provider returned error', metadata, ctx);
    }
    case 'capacity': {
      const n = rule.retryAfterSeconds ?? 40;
      const availability = { code: 'capacity_exhausted', retryable: true, retry_after: n };
      return reply(429, rule, `All providers for ${model} are at capacity. Retry after ${n} seconds.`, undefined, ctx, {}, { availability });
    }
    case 'generic-429': {
      const headers: Headers = {};
      if (rule.retryAfterSeconds !== undefined) headers['Retry-After'] = String(rule.retryAfterSeconds);
      return reply(429, rule, 'Rate limit exceeded', { error_type: 'rate_limit_exceeded' }, ctx, headers);
    }
    case 'transient-402': {
      const seconds = rule.retryAfterSeconds ?? 5;
      const metadata = { limit_source: 'openrouter_in_flight_budget', retry_after_seconds: seconds };
      const message = 'Insufficient credits: too many requests in flight for the remaining balance. Please retry shortly.';
      return reply(402, rule, message, metadata, ctx, { 'Retry-After': String(seconds) });
    }
    case 'no-credits':
      return reply(402, rule, defaultMessage(402), undefined, ctx);
    case 'invalid-key':
      return reply(401, rule, 'User not found.', undefined, ctx);
    case 'cap-403': {
      const metadata = { limit_source: 'key_daily_cap', resets_at: new Date(nextUtcDay(now)).toISOString() };
      return reply(403, rule, 'Key limit exceeded (daily cap). Try again after the reset.', metadata, ctx);
    }
    case 'upstream-429-message':
      return reply(429, rule, upstreamCongestionMessage(model), undefined, ctx);
    case 'model-cap-daily': {
      // As real captures show it: limit and remaining sent, no reset; the cap is the model's, per day.
      const headers: Headers = { 'X-RateLimit-Limit': '5000', 'X-RateLimit-Remaining': '0' };
      const message = `Rate limit exceeded: limit_rpd/${model.replace(/:free$/, '')}/${randomUUID().slice(0, 8)}. Daily limit reached for ${model} via SimUpstream.`;
      return reply(429, rule, message, { headers: { ...headers }, limit_source: 'openrouter_shared_capacity' }, ctx, headers);
    }
    case 'key-limit-403':
      // gptme/gptme#1449, MCPJam/inspector#1287, hermes-agent#93979: message and code only.
      return { status: 403, headers: {}, body: JSON.stringify({ error: { message: rule.message ?? keyLimitMessage(rule.keyLimit ?? 'total'), code: 403 } }), outcome: rule.type };
    case 'request-too-large':
      // As published: message and code only (continuedev/continue#11227, cline/cline#940).
      return { status: 402, headers: {}, body: JSON.stringify({ error: { message: tooLarge(rule, ctx.body) ?? 'Prompt tokens limit exceeded', code: 402 } }), outcome: rule.type };
    case 'model-gone':
      // As published (stepfun-ai/Step-3.5-Flash#45, chatboxai/chatbox#2743): message and code, the account's user_id.
      return reply(404, rule, `No endpoints found for ${model}.`, undefined, ctx);
    case 'error-form':
      return { status: 200, headers: {}, body: JSON.stringify(errorForm(rule, ctx)), outcome: rule.type };
    case 'moderation-403': {
      const metadata = { reasons: ['harassment'], flagged_input: '...', provider_name: 'SimModerator', model_slug: model };
      return reply(403, rule, 'Your input was flagged', metadata, ctx);
    }
    case 'status': {
      const status = rule.status ?? 500;
      const metadata = status === 502 || status === 529 ? { provider_name: 'SimUpstream', raw: 'upstream error' } : undefined;
      return reply(status, rule, defaultMessage(status), metadata, ctx);
    }
    case 'error-in-200': {
      const code = rule.status ?? 429;
      const base = code === 429 ? { error_type: 'rate_limit_exceeded' } : undefined;
      const meta = base === undefined ? rule.metadata : withMetadata(base, rule);
      const body = errorBody(code, rule.message ?? defaultMessage(code), meta, account.id);
      return { status: 200, headers: {}, body, outcome: rule.type };
    }
    default:
      throw new Error(`not a JSON fault: ${rule.type}`);
  }
}

/** The error forms docs/design.md#reading-an-answer lists, inside a 200 body: what orche must still read as the error they carry. */
function errorForm(rule: FaultRule, ctx: FaultContext): unknown {
  const code = rule.status ?? 429;
  const message = rule.message ?? defaultMessage(code);
  switch (rule.form ?? 'http_status') {
    case 'http_status':
      return { error: { message, http_status: code }, user_id: ctx.account.id };
    case 'nested':
      return { error: { error: { message, code } }, user_id: ctx.account.id };
    case 'bare':
      return { error: message };
    case 'finish-error':
      return {
        id: `gen-${randomUUID()}`,
        object: 'chat.completion',
        created: Math.floor(ctx.now / 1000),
        model: ctx.model,
        choices: [{ index: 0, finish_reason: 'error', native_finish_reason: 'error', message: { role: 'assistant', content: '' } }],
      };
  }
}
