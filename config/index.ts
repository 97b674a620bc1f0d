import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { keyId, keyPreview, undeclaredAccount } from '../providers/keys/keys';
import { BUILTIN_PROVIDERS } from './providers';
import { globalSchema, providerSchema } from './schema';

export type Strategy = 'round-robin' | 'failover';
export type KeyRole = 'primary' | 'backup' | 'reserve';

export interface KeyConfig {
  id: string;
  key: string;
  preview: string;
  role: KeyRole;
  /** Declared account (`name:sk-or-…`) or the key's own, `key:<id>`; refined at run time from `user_id`. */
  account: string;
}

export interface ProviderConfig {
  /** Upper-case ID, the env prefix (`KIMI`). */
  id: string;
  /** Lower-case ID, the API name (`kimi`). */
  slug: string;
  name: string;
  model: string;
  strategy: Strategy;
  keys: KeyConfig[];
  rpm?: number;
  rpd?: number;
  /** Lower-case ID of the provider to use when every key of this one is unavailable. */
  fallback?: string;
  /** The operator's OpenRouter `provider` preferences for this model (PROVIDER_X_ROUTING), sent upstream as `provider`. */
  routing?: Record<string, unknown>;
}

export interface RotationConfig {
  cooldownMs: number;
  maxCooldownMs: number;
  maxAttempts: number;
  maxWaitMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  requestTimeoutMs: number;
  /** The whole request, every attempt and wait included. */
  deadlineMs: number;
  /** A stream is ended (error chunk, [DONE]) after this long, however busy (ORCHE_MAX_STREAM_MS). */
  maxStreamMs?: number;
}

export interface PacingConfig {
  /** The minute of per-minute limits learned from 429s; shorter only where a simulation compresses it. */
  minuteMs: number;
  /** Requests waiting for a key, per provider, beyond which a request fails at once with 429. */
  maxQueue: number;
  /** Requests per minute / per UTC day per end user (OpenAI `user` or X-Orche-User); undefined: no limit. */
  userRpm?: number;
  userRpd?: number;
}

/** Operations: key probing, shutdown, alerts. */
export interface OpsConfig {
  /** GET /key for every distinct key at start and then this often; 0: never. */
  probeIntervalMs: number;
  /** How long in-flight requests get to finish on SIGTERM/SIGINT. */
  shutdownGraceMs: number;
  alertWebhook?: string;
  /** At most one alert per provider and kind in this interval. */
  alertIntervalMs: number;
}

/** Bounds on client connections (docs/design.md#connections "Hostile connections and data"); see server/http/connections.ts. */
export interface ConnectionsConfig {
  /** A request's headers must arrive within this (ORCHE_HEADERS_TIMEOUT_MS), counted from the connection or the request's first byte. */
  headersTimeoutMs: number;
  /** The whole request, headers and body, within this (ORCHE_BODY_TIMEOUT_MS); the answer, a stream included, is not counted. */
  requestTimeoutMs: number;
  /** An idle keep-alive socket is closed after this (ORCHE_KEEPALIVE_TIMEOUT_MS). */
  keepAliveTimeoutMs: number;
  /** Open client connections at most (ORCHE_MAX_CONNECTIONS); undefined: half the file limit read at start. */
  maxConnections?: number;
}

export interface Config {
  port: number;
  host: string;
  /** maxBodyBytes: an upstream JSON body over this is refused (ORCHE_MAX_UPSTREAM_BYTES). */
  upstream: { baseUrl: string; referer?: string; title?: string; maxBodyBytes: number };
  rotation: RotationConfig;
  budgets: { freeRpm?: number; freeRpd?: number };
  /** Learned limits, the wait queue and end users (docs/design.md#start-up-checks). */
  pacing: PacingConfig;
  adminToken?: string;
  clientTokens: string[];
  /** Requests per minute per client (token, else IP) on the chat routes; undefined: no limit. */
  clientRpm?: number;
  /** Express "trust proxy": which hops' X-Forwarded-For decides the client's address (false: none). */
  trustProxy: false | number | string[];
  /** Concurrent streams per client identity (fan-out legs count one each); 0: unlimited. */
  maxStreamsPerClient: number;
  connections: ConnectionsConfig;
  corsOrigins: string[];
  /** ORCHE_CLIENT_ROUTING: 'refuse' (default) answers a client's models/route/plugins/provider with 400; 'allow' passes them on, charged to the request. */
  clientRouting: 'allow' | 'refuse';
  protectStatus: boolean;
  bodyLimit: string;
  stateFile?: string;
  /** `required`: a start with Redis unreachable fails instead of serving from local state. */
  redis?: { url: string; prefix: string; required: boolean };
  log: { level: string; format: 'json' | 'pretty' };
  ops: OpsConfig;
  providers: ProviderConfig[];
}

export type Env = Record<string, string | undefined>;

/** One line that names the variable and the form expected; never the value (it may be a key). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * The process environment over `orche.env` (or `ORCHE_ENV_FILE`): real variables win.
 * The file is parsed, not loaded into process.env, so several instances can live in one process.
 */
export function loadEnv(env: Env = process.env, cwd = process.cwd()): Env {
  const file = env.ORCHE_ENV_FILE ? resolve(cwd, env.ORCHE_ENV_FILE) : resolve(cwd, 'orche.env');
  if (!existsSync(file)) {
    if (env.ORCHE_ENV_FILE) throw new ConfigError(`ORCHE_ENV_FILE: expected a readable file, ${file} does not exist`);
    return { ...env };
  }
  const fromFile = parseDotenv(readFileSync(file));
  const merged: Env = { ...fromFile };
  for (const [name, value] of Object.entries(env)) if (value !== undefined) merged[name] = value;
  return merged;
}

function firstIssue(prefix: string, error: z.ZodError): ConfigError {
  const issue = error.issues[0];
  const variable = `${prefix}${String(issue.path[0] ?? '')}`;
  return new ConfigError(`${variable}: expected ${issue.message}`);
}

function parseWith<T extends z.ZodTypeAny>(schema: T, input: Env, prefix: string): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw firstIssue(prefix, result.error);
  return result.data;
}

const ACCOUNT_PREFIX = /^([A-Za-z0-9_.@-]{1,64}):(?!\/\/)(.+)$/;

function splitList(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function readKeysFile(variable: string, path: string, cwd: string): string[] {
  let text: string;
  try {
    text = readFileSync(resolve(cwd, path), 'utf8');
  } catch {
    throw new ConfigError(`${variable}: expected a readable file with one key per line, cannot read ${path}`);
  }
  return text
    .split(/\r?\n/)
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter(Boolean);
}

function toKey(entry: string, role: KeyRole, variable: string): KeyConfig {
  const m = ACCOUNT_PREFIX.exec(entry);
  const key = (m ? m[2] : entry).trim();
  if (!key || /\s/.test(key)) throw new ConfigError(`${variable}: expected comma-separated keys (optionally account:key) without spaces inside a key`);
  const id = keyId(key);
  return { id, key, preview: keyPreview(key), role, account: m ? m[1] : undeclaredAccount(id) };
}

function providerIds(env: Env): Array<{ id: string; name: string; model: string }> {
  const extra = splitList(env.ORCHE_PROVIDERS).map((raw) => {
    const id = raw.toUpperCase();
    if (!/^[A-Z][A-Z0-9_]{0,31}$/.test(id)) {
      throw new ConfigError('ORCHE_PROVIDERS: expected comma-separated provider IDs of letters, digits and _ (e.g. MISTRAL,DEEPSEEK)');
    }
    return id;
  });
  const builtin = BUILTIN_PROVIDERS.map((p) => ({ ...p }));
  for (const id of extra) {
    if (builtin.some((p) => p.id === id)) continue;
    const model = env[`PROVIDER_${id}_MODEL`];
    if (!model) throw new ConfigError(`PROVIDER_${id}_MODEL: expected an OpenRouter model slug for the provider added by ORCHE_PROVIDERS`);
    builtin.push({ id, name: id, model });
  }
  return builtin;
}

function pick(env: Env, prefix: string): Env {
  const out: Env = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.startsWith(prefix) && value !== undefined && value.trim() !== '') out[name.slice(prefix.length)] = value;
  }
  return out;
}

/** Parses and validates everything once; throws ConfigError with one clear line. */
export function parseConfig(env: Env, cwd = process.cwd()): Config {
  const g = parseWith(globalSchema, pick(env, ''), '');
  const providers: ProviderConfig[] = providerIds(env).map((base) => {
    const prefix = `PROVIDER_${base.id}_`;
    const p = parseWith(providerSchema, pick(env, prefix), prefix);
    const seen = new Set<string>();
    const keys: KeyConfig[] = [];
    const add = (entries: string[], role: KeyRole, variable: string) => {
      for (const entry of entries) {
        const k = toKey(entry, role, variable);
        if (seen.has(k.key)) continue;
        seen.add(k.key);
        keys.push(k);
      }
    };
    add(splitList(p.API_KEY), 'primary', `${prefix}API_KEY`);
    add(splitList(p.BACKUP_KEYS), 'backup', `${prefix}BACKUP_KEYS`);
    if (p.KEYS_FILE) add(readKeysFile(`${prefix}KEYS_FILE`, p.KEYS_FILE, cwd), 'backup', `${prefix}KEYS_FILE`);
    add(splitList(p.RESERVE_KEYS), 'reserve', `${prefix}RESERVE_KEYS`);
    return {
      id: base.id,
      slug: base.id.toLowerCase(),
      name: p.NAME ?? base.name,
      model: p.MODEL ?? base.model,
      strategy: p.STRATEGY ?? g.ORCHE_STRATEGY,
      keys,
      rpm: p.RPM,
      rpd: p.RPD,
      fallback: p.FALLBACK?.toLowerCase(),
      routing: p.ROUTING,
    };
  });

  const slugs = providers.map((p) => p.slug);
  for (const p of providers) {
    if (p.fallback === undefined) continue;
    if (!slugs.includes(p.fallback) || p.fallback === p.slug) {
      throw new ConfigError(`PROVIDER_${p.id}_FALLBACK: expected another provider ID, one of ${slugs.filter((s) => s !== p.slug).join(', ')}`);
    }
  }
  if (providers.every((p) => p.keys.length === 0)) {
    throw new ConfigError(
      'No API keys configured: set PROVIDER_<ID>_API_KEY (and optionally PROVIDER_<ID>_BACKUP_KEYS) for at least one of ' +
        `${providers.map((p) => p.id).join(', ')} in the environment or orche.env; to try orche without keys, run \`npm run demo\``,
    );
  }
  // Node refuses a header bound past the whole request's.
  if (g.ORCHE_HEADERS_TIMEOUT_MS > g.ORCHE_BODY_TIMEOUT_MS) {
    throw new ConfigError('ORCHE_HEADERS_TIMEOUT_MS: expected a number of milliseconds not above ORCHE_BODY_TIMEOUT_MS');
  }
  if (g.ORCHE_MAX_COOLDOWN_MS < g.ORCHE_COOLDOWN_MS) {
    throw new ConfigError('ORCHE_MAX_COOLDOWN_MS: expected a number of milliseconds not below ORCHE_COOLDOWN_MS');
  }

  return {
    port: g.PORT,
    host: g.HOST,
    upstream: { baseUrl: g.OPENROUTER_BASE_URL, referer: g.OPENROUTER_REFERER, title: g.OPENROUTER_TITLE, maxBodyBytes: g.ORCHE_MAX_UPSTREAM_BYTES },
    rotation: {
      cooldownMs: g.ORCHE_COOLDOWN_MS,
      maxCooldownMs: g.ORCHE_MAX_COOLDOWN_MS,
      maxAttempts: g.ORCHE_MAX_ATTEMPTS,
      maxWaitMs: g.ORCHE_MAX_WAIT_MS,
      backoffBaseMs: g.ORCHE_BACKOFF_BASE_MS,
      backoffMaxMs: Math.max(g.ORCHE_BACKOFF_MAX_MS, g.ORCHE_BACKOFF_BASE_MS),
      requestTimeoutMs: g.ORCHE_REQUEST_TIMEOUT_MS,
      deadlineMs: Math.max(g.ORCHE_REQUEST_DEADLINE_MS, g.ORCHE_REQUEST_TIMEOUT_MS),
      maxStreamMs: g.ORCHE_MAX_STREAM_MS,
    },
    budgets: { freeRpm: g.ORCHE_FREE_RPM, freeRpd: g.ORCHE_FREE_RPD },
    pacing: { minuteMs: g.ORCHE_MINUTE_MS, maxQueue: g.ORCHE_MAX_QUEUE, userRpm: g.ORCHE_USER_RPM, userRpd: g.ORCHE_USER_RPD },
    adminToken: g.ORCHE_ADMIN_TOKEN,
    clientTokens: splitList(g.ORCHE_CLIENT_TOKENS),
    clientRpm: g.ORCHE_CLIENT_RPM,
    trustProxy: g.ORCHE_TRUST_PROXY,
    maxStreamsPerClient: g.ORCHE_MAX_STREAMS_PER_CLIENT,
    connections: {
      headersTimeoutMs: g.ORCHE_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: g.ORCHE_BODY_TIMEOUT_MS,
      keepAliveTimeoutMs: g.ORCHE_KEEPALIVE_TIMEOUT_MS,
      maxConnections: g.ORCHE_MAX_CONNECTIONS,
    },
    corsOrigins: splitList(g.ORCHE_CORS_ORIGINS),
    clientRouting: g.ORCHE_CLIENT_ROUTING,
    protectStatus: g.ORCHE_PROTECT_STATUS,
    bodyLimit: g.ORCHE_BODY_LIMIT,
    stateFile: g.ORCHE_STATE_FILE,
    redis: g.REDIS_URL ? { url: g.REDIS_URL, prefix: g.ORCHE_REDIS_PREFIX, required: g.ORCHE_REDIS_REQUIRED } : undefined,
    log: { level: g.LOG_LEVEL, format: g.LOG_FORMAT },
    ops: {
      probeIntervalMs: g.ORCHE_PROBE_INTERVAL_MS,
      shutdownGraceMs: g.ORCHE_SHUTDOWN_GRACE_MS,
      alertWebhook: g.ORCHE_ALERT_WEBHOOK,
      alertIntervalMs: g.ORCHE_ALERT_INTERVAL_MS,
    },
    providers,
  };
}

/** The one entry point for the process: environment + env file → validated config. */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  return parseConfig(loadEnv(env, cwd), cwd);
}
