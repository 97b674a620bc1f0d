/** Public shapes of the OpenRouter simulator; re-exported by `scripts/simulator.ts`. */

export interface SimKey {
  key: string;
  /** OpenRouter user id owning the key, e.g. 'user_team1'; default: its own account 'user_' + keyId(key). */
  account?: string;
  /** The account's credits. Default true; false answers 402 "Insufficient credits" (GET /key cannot show it: it is not the key's own limit). */
  credits?: boolean;
  /**
   * The key's own credit limit (OpenRouter's per-key `limit`, in dollars) and what is left of it;
   * default none. GET /key shows both; at `remaining` ≤ 0 a call answers 403 "Key limit exceeded (total limit)".
   */
  keyLimit?: { limit: number; remaining: number };
  /** True answers 401 "User not found.". */
  revoked?: boolean;
  /**
   * GET /key's `expires_at` (ISO 8601 UTC, default null: never). Once past, a chat call answers 401
   * "User not found." as for a revoked key (docs/design.md#the-outcome-table: 401 is a bad, revoked or expired key);
   * GET /key still describes the key, so that orche can tell why.
   */
  expiresAt?: string | null;
  /** GET /key's deprecated `rate_limit` (default: the documented example, 1000 per "1h"); never enforced here either. */
  rateLimit?: { requests: number; interval: string };
  /** Per-KEY limits, any model. */
  rpm?: number;
  rpd?: number;
}

export interface SimAccount {
  id: string;
  /** Default 20. */
  freeRpm?: number;
  /** Default 50, or 1000 if highBalance. */
  freeRpd?: number;
  highBalance?: boolean;
  /** `:free` calls the account already made today (elsewhere, before this run): GET /key's free_model_daily_requests.used starts there. */
  usedToday?: number;
}

export interface SimulatorOptions {
  /** Default 0 (random); the host is always 127.0.0.1. */
  port?: number;
  /** Keys not listed answer 401 (unless acceptAnyKey). */
  keys?: SimKey[];
  /** Benchmark mode: any Bearer key is valid, each on its own account. */
  acceptAnyKey?: boolean;
  accounts?: SimAccount[];
  /** Default: the six slugs and each with ':free'. */
  models?: string[];
  /** Per-account free limits apply to ':free' models (default), to every model, or never. */
  accountLimits?: 'free' | 'all' | 'off';
  /** Artificial latency before every answer (default 0). */
  latencyMs?: number;
  /** Also send Retry-After (seconds) on OpenRouter-own 429s (default false). */
  retryAfter?: boolean;
  /**
   * Length of the per-minute windows (key rpm, account freeRpm), default 60000. Shorter windows
   * compress a minute for benchmarks; 429s then carry this window's reset.
   */
  windowMs?: number;
  /**
   * How the per-minute windows open: 'aligned' (default) on whole multiples of `windowMs`, as
   * OpenRouter's; 'first-call' at an account's (or key's) first counted call after its last window ended.
   */
  windowMode?: 'aligned' | 'first-call';
  /** Injectable clock (default Date.now), used for all windows and reset times. */
  now?: () => number;
  /** roleDelta: open every stream with the empty `{"role":"assistant","content":""}` delta, as real OpenRouter streams do (default false). */
  stream?: { chunks?: number; chunkDelayMs?: number; processingComment?: boolean; roleDelta?: boolean };
  /** Keep at most this many call records (oldest dropped in batches); default 100000. */
  maxCalls?: number;
}

export interface CallRecord {
  seq: number;
  at: number;
  keyId: string;
  key: string;
  account: string;
  model: string;
  status: number;
  /** 'ok' | 'free-per-min' | 'free-per-day' | 'key-rate-limit' | 'invalid-key' | 'no-credits' | 'key-limit' | 'bad-request' | a rule's type. */
  outcome: string;
  stream: boolean;
  /** The client closed the connection before the response finished. */
  closedByClient: boolean;
  /** Chat calls in flight when this one arrived, itself included: how concurrent the caller was. */
  inFlight: number;
  /** The parsed request body (the raw text when it was not JSON). */
  body: unknown;
  /** Data chunks of a stream written so far (keep-alive comments not counted). */
  chunksSent: number;
}

export type FaultType =
  | 'free-per-min' | 'free-per-day' | 'model-cap' | 'upstream-429' | 'capacity' | 'generic-429'
  | 'transient-402' | 'no-credits' | 'invalid-key' | 'cap-403' | 'moderation-403'
  | 'status'
  | 'error-in-200'
  | 'hang'
  | 'garbage'
  | 'truncated'
  | 'reset'
  | 'delay'
  /**
   * A normal stream that stops after `afterChunks` data chunks (default 1) and sends the rest only
   * once the gate named `gate` (default "default") is released (Simulator.release, POST /_sim/release):
   * a test can show that orche relayed a chunk before the upstream sent the next one, causally.
   */
  | 'gate'
  | 'stream-error'
  // Real answers orche once misread (docs/design.md#learned-limits):
  /** 429 whose message itself says "<model> is temporarily rate-limited upstream" (no raw, no provider_name); in a stream, an error chunk after the empty role delta. */
  | 'upstream-429-message'
  /** 429 `limit_rpd/<model>/…` "Daily limit reached", X-RateLimit-Remaining 0 and no reset. */
  | 'model-cap-daily'
  /** 403 "Key limit exceeded (<keyLimit> limit)", no limit_source. */
  | 'key-limit-403'
  /** 429 from the edge in front of the host: plain text "error code: 1015" (Retry-After when retryAfterSeconds is set). */
  | 'edge-1015'
  /** A stream that opens with the empty `{"role":"assistant","content":""}` delta, then an error chunk (status default 429). */
  | 'stream-open-error'
  /** A 200 carrying an error in one of the forms docs/design.md#picking-a-key lists (`form`); the carried status is `status` (default 429). */
  | 'error-form'
  /** 404 "No endpoints found for <model>." with the account's user_id: the model (or its :free variant) is gone. */
  | 'model-gone'
  /**
   * 402 for a request larger than the key's or account's limit allows (docs/design.md#pacing-and-fairness): "Prompt tokens limit
   * exceeded: X > Y" past `promptTokenLimit` (the simulator's token estimate), "max_tokens limit exceeded:
   * X > Y" past `maxTokensLimit`. Requests within both pass the rule by.
   */
  | 'request-too-large';

export interface FaultRule {
  /**
   * `key` matches the key itself or its keyId; `model` is an exact slug; `provider`: the request's
   * `provider.only` names this provider (a client's routing choice, as OpenRouter honours it).
   */
  match?: { key?: string; account?: string; model?: string; provider?: string };
  /** Default: unlimited. */
  times?: number;
  /** Applies to this share (0..1) of the matching calls, at random; default: every matching call. */
  probability?: number;
  type: FaultType;
  status?: number;
  message?: string;
  metadata?: Record<string, unknown>;
  headers?: Record<string, string>;
  retryAfterSeconds?: number;
  delayMs?: number;
  afterChunks?: number;
  /** gate: the gate's name (default "default"). */
  gate?: string;
  /** Per-rule streaming delay override. */
  chunkDelayMs?: number;
  /** request-too-large: the most prompt tokens (estimated as characters / 4) and max_tokens a request may carry. */
  promptTokenLimit?: number;
  maxTokensLimit?: number;
  /** key-limit-403: which of the key's caps ran out (default 'total'). */
  keyLimit?: 'total' | 'daily' | 'weekly' | 'monthly';
  /**
   * error-form: `http_status` (the status in error.http_status), `nested` ({"error":{"error":{…}}}),
   * `bare` ({"error":"<message>"}), `finish-error` (finish_reason and native_finish_reason "error", no error object).
   */
  form?: 'http_status' | 'nested' | 'bare' | 'finish-error';
}

export interface Simulator {
  readonly port: number;
  /** e.g. 'http://127.0.0.1:PORT/api/v1' */
  readonly baseUrl: string;
  readonly calls: CallRecord[];
  addKey(k: SimKey): void;
  updateKey(key: string, patch: Partial<SimKey>): void;
  /** Adds or updates an account (its counters are kept). */
  addAccount(a: SimAccount): void;
  addRule(rule: FaultRule): void;
  clearRules(): void;
  /** Clears rate-limit windows. */
  resetCounters(): void;
  /** Clears calls, rules and counters (keys stay). */
  reset(): void;
  setLatency(ms: number): void;
  /** Opens the gate `name` (a 'gate' rule's): held streams go on, later ones pass it at once. */
  release(name?: string): void;
  /** Closes the server and destroys open sockets (incl. hanging ones) promptly. */
  close(): Promise<void>;
}
