import { isIP } from 'node:net';
import { z } from 'zod';
import type { Config } from './index';

/** Every variable is named here once; an error names the variable and the form expected. */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `a whole number from ${min} to ${max}`);

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), 'true or false')
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** An address or CIDR (v4 or v6), or one of Express's names for address ranges. */
const PROXY_NAMES = ['loopback', 'linklocal', 'uniquelocal'];
function isProxyAddress(entry: string): boolean {
  if (PROXY_NAMES.includes(entry)) return true;
  const [addr, bits, ...rest] = entry.split('/');
  const family = isIP(addr);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * Express "trust proxy": false (X-Forwarded-For never counts), a hop count, or the proxies' addresses.
 * `true` (trust every hop, so the left-most, client-written address) is refused: it is spoofable.
 */
const trustProxy = z
  .string()
  .trim()
  .transform((v, ctx): false | number | string[] => {
    const lower = v.toLowerCase();
    if (['false', '0', 'no'].includes(lower)) return false;
    if (/^\d+$/.test(v) && Number(v) <= 32) return Number(v);
    const list = v.split(',').map((s) => s.trim()).filter(Boolean);
    if (list.length > 0 && list.every(isProxyAddress)) return list;
    ctx.addIssue({ code: 'custom', message: 'false, a hop count from 1 to 32, or comma-separated proxy addresses/CIDRs (loopback, 10.0.0.0/8, …)' });
    return z.NEVER;
  });

const MIN_CLIENT_TOKEN = 16;

/** OpenRouter's provider routing object (its `provider` request field), as documented for chat completions. */
const stringList = z.array(z.string().min(1)).max(64);
export const providerRoutingSchema = z.strictObject({
  order: stringList.optional(),
  only: stringList.optional(),
  ignore: stringList.optional(),
  allow_fallbacks: z.boolean().optional(),
  require_parameters: z.boolean().optional(),
  data_collection: z.enum(['allow', 'deny']).optional(),
  zdr: z.boolean().optional(),
  enforce_distillable_text: z.boolean().optional(),
  quantizations: stringList.optional(),
  sort: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
  max_price: z.record(z.string(), z.unknown()).optional(),
  preferred_min_throughput: z.union([z.number(), z.record(z.string(), z.unknown())]).optional(),
  preferred_max_latency: z.union([z.number(), z.record(z.string(), z.unknown())]).optional(),
});

const ROUTING_FORM = 'a JSON object of OpenRouter provider preferences such as {"order":["DeepInfra"],"allow_fallbacks":false}';

/** PROVIDER_X_ROUTING: JSON text of an OpenRouter `provider` object, checked at start. */
const providerRouting = z
  .string()
  .trim()
  .transform((v, ctx): Record<string, unknown> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${ROUTING_FORM} (not valid JSON)` });
      return z.NEVER;
    }
    const result = providerRoutingSchema.safeParse(parsed);
    if (!result.success) {
      const issue = result.error.issues[0];
      const where = issue.code === 'unrecognized_keys' ? `unknown field(s) ${(issue as { keys: string[] }).keys.join(', ')}` : `${issue.path.join('.') || 'value'}: ${issue.message}`;
      ctx.addIssue({ code: 'custom', message: `${ROUTING_FORM} (${where})` });
      return z.NEVER;
    }
    return result.data as Record<string, unknown>;
  });

export const strategySchema = z.enum(['round-robin', 'failover'], { error: 'round-robin or failover' });

/** The part of the Config a variable feeds: server/lifecycle/reload.ts names the variables of a part that changed. */
const part = (name: keyof Config) => ({ part: name });

export const globalSchema = z.object({
  PORT: int(0, 65535).default(8002).meta(part('port')),
  HOST: z.string().trim().min(1, 'a host name or address').default('0.0.0.0').meta(part('host')),
  OPENROUTER_BASE_URL: z
    .url({ protocol: /^https?$/, error: 'an http(s) URL such as https://openrouter.ai/api/v1' })
    .default('https://openrouter.ai/api/v1')
    .transform((u) => u.replace(/\/+$/, '')).meta(part('upstream')),
  OPENROUTER_REFERER: z.string().trim().optional().meta(part('upstream')),
  OPENROUTER_TITLE: z.string().trim().optional().meta(part('upstream')),
  ORCHE_STRATEGY: strategySchema.default('round-robin').meta(part('providers')),
  ORCHE_COOLDOWN_MS: int(1).default(60000).meta(part('rotation')),
  ORCHE_MAX_COOLDOWN_MS: int(1).default(900000).meta(part('rotation')),
  ORCHE_MAX_ATTEMPTS: int(1, 50).default(4).meta(part('rotation')),
  ORCHE_MAX_WAIT_MS: int(0).default(3000).meta(part('rotation')),
  ORCHE_BACKOFF_BASE_MS: int(0).default(1000).meta(part('rotation')),
  ORCHE_BACKOFF_MAX_MS: int(0).default(10000).meta(part('rotation')),
  ORCHE_REQUEST_TIMEOUT_MS: int(1).default(60000).meta(part('rotation')),
  ORCHE_REQUEST_DEADLINE_MS: int(1).default(120000).meta(part('rotation')),
  ORCHE_CLIENT_RPM: int(1).optional().meta(part('clientRpm')),
  ORCHE_TRUST_PROXY: trustProxy.default(false).meta(part('trustProxy')),
  ORCHE_MAX_UPSTREAM_BYTES: int(1024).default(8 * 1024 * 1024).meta(part('upstream')),
  ORCHE_MAX_STREAM_MS: int(1).default(600_000).meta(part('rotation')),
  ORCHE_MAX_STREAMS_PER_CLIENT: int(0).default(20).meta(part('maxStreamsPerClient')),
  ORCHE_HEADERS_TIMEOUT_MS: int(1).default(10_000).meta(part('connections')),
  ORCHE_BODY_TIMEOUT_MS: int(1).default(30_000).meta(part('connections')),
  ORCHE_KEEPALIVE_TIMEOUT_MS: int(1).default(5_000).meta(part('connections')),
  ORCHE_MAX_CONNECTIONS: int(1).optional().meta(part('connections')),
  ORCHE_ADMIN_TOKEN: z
    .string()
    .trim()
    .min(8, 'a token of at least 8 characters')
    .regex(/^\S+$/, 'a token without spaces (a Bearer header cannot carry one)')
    .optional().meta(part('adminToken')),
  // Client tokens open the chat routes, which spend the keys: a short one can be guessed.
  ORCHE_CLIENT_TOKENS: z
    .string()
    .optional()
    .refine(
      (v) => (v ?? '').split(',').map((t) => t.trim()).filter(Boolean).every((t) => t.length >= MIN_CLIENT_TOKEN && !/\s/.test(t)),
      `comma-separated tokens of at least ${MIN_CLIENT_TOKEN} characters each, without spaces`,
    ).meta(part('clientTokens')),
  ORCHE_CORS_ORIGINS: z.string().optional().meta(part('corsOrigins')),
  // Whether a client may send OpenRouter's routing fields (models, route, plugins, provider): docs/design.md#client-routing.
  ORCHE_CLIENT_ROUTING: z
    .string()
    .trim()
    .toLowerCase()
    .refine((v) => v === 'allow' || v === 'refuse', 'allow or refuse')
    .transform((v) => v as 'allow' | 'refuse')
    .default('refuse').meta(part('clientRouting')),
  ORCHE_STATE_FILE: z.string().trim().min(1, 'a file path').optional().meta(part('stateFile')),
  REDIS_URL: z.string().trim().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL').optional().meta(part('redis')),
  ORCHE_REDIS_PREFIX: z.string().trim().min(1, 'a key prefix such as orche:').default('orche:').meta(part('redis')),
  ORCHE_REDIS_REQUIRED: bool.default(false).meta(part('redis')),
  ORCHE_FREE_RPM: int(1).optional().meta(part('budgets')),
  ORCHE_FREE_RPD: int(1).optional().meta(part('budgets')),
  ORCHE_MINUTE_MS: int(1000, 60000).default(60000).meta(part('pacing')),
  ORCHE_MAX_QUEUE: int(0).default(1000).meta(part('pacing')),
  ORCHE_USER_RPM: int(1).optional().meta(part('pacing')),
  ORCHE_USER_RPD: int(1).optional().meta(part('pacing')),
  ORCHE_PROVIDERS: z.string().optional().meta(part('providers')),
  ORCHE_BODY_LIMIT: z.string().trim().regex(/^\d+(b|kb|mb)?$/i, 'a size such as 1mb or 512kb').default('1mb').meta(part('bodyLimit')),
  ORCHE_PROTECT_STATUS: bool.default(false).meta(part('protectStatus')),
  ORCHE_PROBE_INTERVAL_MS: int(0).default(600000).meta(part('ops')),
  ORCHE_SHUTDOWN_GRACE_MS: int(0).default(10000).meta(part('ops')),
  ORCHE_ALERT_WEBHOOK: z.url({ protocol: /^https?$/, error: 'an http(s) URL that accepts a JSON POST' }).optional().meta(part('ops')),
  ORCHE_ALERT_INTERVAL_MS: int(0).default(300000).meta(part('ops')),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly', 'silent'], {
    error: 'one of error, warn, info, debug, silent',
  }).default('info').meta(part('log')),
  LOG_FORMAT: z.enum(['json', 'pretty'], { error: 'json or pretty' }).default('json').meta(part('log')),
});

export const providerSchema = z.object({
  API_KEY: z.string().optional(),
  BACKUP_KEYS: z.string().optional(),
  KEYS_FILE: z.string().trim().optional(),
  RESERVE_KEYS: z.string().optional(),
  MODEL: z.string().trim().min(1, 'an OpenRouter model slug such as moonshotai/kimi-k2').optional(),
  NAME: z.string().trim().min(1, 'a display name').optional(),
  STRATEGY: strategySchema.optional(),
  RPM: int(1).optional(),
  RPD: int(1).optional(),
  FALLBACK: z.string().trim().min(1, 'a provider ID').optional(),
  ROUTING: providerRouting.optional(),
});

/** The variables behind a part of the Config, in the schema's order (none for a part no variable feeds). */
export function variablesOf(name: keyof Config): string[] {
  return Object.entries(globalSchema.shape)
    .filter(([, schema]) => (schema.meta() as { part?: string } | undefined)?.part === name)
    .map(([variable]) => variable);
}
