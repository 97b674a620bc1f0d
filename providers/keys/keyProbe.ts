import type { KeyPool, ProviderRuntime } from './keyPool';
import { parseInterval } from '../limits/learnedLimit';
import { type OpenRouterClient, UpstreamFailure } from '../upstream/openrouterClient';

/** What OpenRouter's GET /key said about one key (never its label: that is part of the key). */
export interface KeyProbe {
  checked_at: string;
  ok: boolean;
  /** HTTP status of GET /key, or null when it did not answer. */
  status: number | null;
  error?: string;
  limit?: number | null;
  limit_remaining?: number | null;
  usage?: number | null;
  is_free_tier?: boolean | null;
  free_model_daily_requests?: { limit: number | null; remaining: number | null; used: number | null } | null;
  /** The key's request limit (`rate_limit: {requests, interval}`; deprecated upstream, learned when present). */
  rate_limit?: { requests: number; interval_ms: number } | null;
}

export interface ProbeSummary {
  probed: number;
  disabled: string[];
  reactivated: string[];
  failed: string[];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function readKeyInfo(body: unknown): Omit<KeyProbe, 'checked_at' | 'ok' | 'status'> {
  const d = ((body as { data?: Record<string, unknown> } | undefined)?.data ?? {}) as Record<string, unknown>;
  const free = d.free_model_daily_requests as Record<string, unknown> | undefined;
  return {
    limit: num(d.limit),
    limit_remaining: num(d.limit_remaining),
    usage: num(d.usage),
    is_free_tier: typeof d.is_free_tier === 'boolean' ? d.is_free_tier : null,
    free_model_daily_requests: free && typeof free === 'object' ? { limit: num(free.limit), remaining: num(free.remaining), used: num(free.used) } : null,
    rate_limit: rateLimitOf(d.rate_limit),
  };
}

function rateLimitOf(value: unknown): KeyProbe['rate_limit'] {
  const r = value as { requests?: unknown; interval?: unknown } | null | undefined;
  const requests = num(r?.requests);
  const intervalMs = parseInterval(r?.interval);
  // -1 (or 0) requests means no limit of its own.
  return requests !== null && requests >= 1 && intervalMs !== undefined ? { requests, interval_ms: intervalMs } : null;
}

/**
 * Asks OpenRouter's GET /key about every distinct key: a key it rejects (401) is disabled before a
 * user request touches it; a key whose own credit limit is spent is disabled (`key_limit`) and is
 * enabled again once GET /key shows room.
 */
export class KeyProber {
  private readonly results = new Map<string, KeyProbe>();
  private running: Promise<ProbeSummary> | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: KeyPool,
    private readonly client: OpenRouterClient,
    private readonly now: () => number,
    private readonly timeoutMs = 5000,
    private readonly concurrency = 8,
  ) {}

  get(keyId: string): KeyProbe | null {
    return this.results.get(keyId) ?? null;
  }

  /** Probes every key now; a probe already running is joined rather than doubled. */
  probeNow(): Promise<ProbeSummary> {
    if (!this.running) this.running = this.probeAll().finally(() => (this.running = null));
    return this.running;
  }

  /** Probes every `intervalMs` (timer unref'd: it never keeps the process alive). */
  schedule(intervalMs: number, onDone: (s: ProbeSummary) => void, onError: (err: unknown) => void): void {
    this.stop();
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => this.probeNow().then(onDone).catch(onError), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async probeAll(): Promise<ProbeSummary> {
    const targets = new Map<string, { provider: ProviderRuntime; keyId: string }>();
    for (const provider of this.pool.list()) for (const keyId of provider.keys.keys()) if (!targets.has(keyId)) targets.set(keyId, { provider, keyId });
    const summary: ProbeSummary = { probed: 0, disabled: [], reactivated: [], failed: [] };
    const queue = [...targets.values()];
    const worker = async () => {
      for (let t = queue.shift(); t; t = queue.shift()) await this.probeOne(t.provider, t.keyId, summary);
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, queue.length) }, worker));
    // Keys no longer configured (hot reload) drop out of the results.
    for (const id of this.results.keys()) if (!targets.has(id)) this.results.delete(id);
    return summary;
  }

  private async probeOne(provider: ProviderRuntime, keyId: string, summary: ProbeSummary): Promise<void> {
    summary.probed++;
    const checkedAt = new Date(this.now()).toISOString();
    let status: number;
    let body: unknown;
    try {
      const reply = await this.client.get('/key', this.pool.secret(provider, keyId), { timeoutMs: this.timeoutMs });
      status = reply.status;
      body = reply.body;
    } catch (err) {
      const message = err instanceof UpstreamFailure ? err.message : 'probe failed';
      this.results.set(keyId, { checked_at: checkedAt, ok: false, status: null, error: message });
      summary.failed.push(keyId);
      return;
    }
    if (status !== 200) {
      this.results.set(keyId, { checked_at: checkedAt, ok: false, status, error: status === 401 ? 'key rejected (401)' : `GET /key answered ${status}` });
      if (status === 401) await this.setReason(provider, keyId, 'invalid_key', summary);
      else summary.failed.push(keyId);
      return;
    }
    const info = readKeyInfo(body);
    this.results.set(keyId, { checked_at: checkedAt, ok: true, status, ...info });
    // GET /key describes the KEY's own credit limit (limit_remaining null: it has none), never the
    // account's balance: it can show a key's own limit spent or with room again, nothing more.
    const ownLimitHasRoom = info.limit_remaining === null || info.limit_remaining === undefined || info.limit_remaining > 0;
    await this.setReason(provider, keyId, ownLimitHasRoom ? null : 'key_limit', summary);
    // What GET /key says of limits teaches them like a 429 would (SPEC §7).
    const now = this.now();
    if (info.rate_limit) await this.pool.learnFromProbe(provider, keyId, 'key', info.rate_limit.requests, info.rate_limit.interval_ms, now);
    const daily = info.free_model_daily_requests?.limit;
    if (daily && provider.plan.free) await this.pool.learnFromProbe(provider, keyId, 'account_free', daily, 86_400_000, now);
  }

  /**
   * Disables with `reason`, or (null) re-enables a key disabled for its own limit (`key_limit`), which
   * GET /key has just shown to have room. Other states are left alone: `insufficient_credits` (a 402
   * for the account's credits) too, since GET /key cannot see the account's balance and re-enabling on
   * no evidence only spends one more 402 per key and probe; an admin reactivates those.
   */
  private async setReason(provider: ProviderRuntime, keyId: string, reason: 'invalid_key' | 'key_limit' | null, summary: ProbeSummary): Promise<void> {
    const view = provider.views.get(keyId);
    if (!view) return;
    const [current] = await this.pool.store.inspect([view], this.now());
    if (reason !== null && current.disabled === null) {
      await this.pool.setDisabled(keyId, reason, this.now());
      summary.disabled.push(keyId);
    } else if (reason === null && current.disabled === 'key_limit') {
      await this.pool.setDisabled(keyId, null, this.now());
      summary.reactivated.push(keyId);
    }
  }
}
