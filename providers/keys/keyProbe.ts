import type { KeyPool, ProviderRuntime } from './keyPool';
import { DAY_MS, nextUtcMidnight } from '../limits/windows';
import { type OpenRouterClient, UpstreamFailure } from '../upstream/openrouterClient';

/** How long before `expires_at` a key is reported as expiring (docs/design.md#what-get-key-is-used-for: a day). */
export const EXPIRY_WARNING_MS = DAY_MS;

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
  /** The account (user) that created the key: keys with the same one share account limits. */
  creator_user_id?: string | null;
  /** ISO 8601 UTC time the key stops working, or null: never. */
  expires_at?: string | null;
  /**
   * As reported, never learned or enforced: OpenRouter documents it as deprecated ("This field is
   * deprecated and safe to ignore.", docs/design.md#what-get-key-is-used-for).
   */
  rate_limit?: { requests: number | null; interval: string | null; note: string | null } | null;
}

/** A key whose GET /key shows it expires within EXPIRY_WARNING_MS. */
export interface ExpiringKey {
  key_id: string;
  providers: string[];
  expires_at: string;
  expires_in_ms: number;
}

export interface ProbeSummary {
  probed: number;
  disabled: string[];
  reactivated: string[];
  failed: string[];
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

const str = (v: unknown, max = 200): string | null => (typeof v === 'string' && v.length > 0 ? v.slice(0, max) : null);

export function readKeyInfo(body: unknown): Omit<KeyProbe, 'checked_at' | 'ok' | 'status'> {
  const d = ((body as { data?: Record<string, unknown> } | undefined)?.data ?? {}) as Record<string, unknown>;
  const free = d.free_model_daily_requests as Record<string, unknown> | undefined;
  const rate = d.rate_limit as Record<string, unknown> | undefined;
  const expires = str(d.expires_at, 64);
  return {
    limit: num(d.limit),
    limit_remaining: num(d.limit_remaining),
    usage: num(d.usage),
    is_free_tier: typeof d.is_free_tier === 'boolean' ? d.is_free_tier : null,
    free_model_daily_requests: free && typeof free === 'object' ? { limit: num(free.limit), remaining: num(free.remaining), used: num(free.used) } : null,
    creator_user_id: str(d.creator_user_id),
    expires_at: expires !== null && !Number.isNaN(Date.parse(expires)) ? new Date(Date.parse(expires)).toISOString() : null,
    rate_limit: rate && typeof rate === 'object' ? { requests: num(rate.requests), interval: str(rate.interval, 32), note: str(rate.note) } : null,
  };
}

/**
 * Asks OpenRouter's GET /key about every distinct key (at start, on reload, every probe interval): a
 * key it rejects (401) is disabled before a user request touches it; a key whose own credit limit is
 * spent is disabled (`key_limit`), an expired one too (`expired`), each enabled again once GET /key
 * shows otherwise. What it says of accounts is used (docs/design.md#what-get-key-is-used-for): `creator_user_id` groups keys into
 * accounts before any 429, and `free_model_daily_requests` is the account's `:free` count for the day.
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
    const now = this.now();
    // GET /key describes the KEY's own credit limit (limit_remaining null: it has none), never the
    // account's balance: it can show a key's own limit spent or with room again, nothing more.
    const ownLimitSpent = info.limit_remaining !== null && info.limit_remaining !== undefined && info.limit_remaining <= 0;
    const expired = info.expires_at !== null && info.expires_at !== undefined && Date.parse(info.expires_at) <= now;
    await this.setReason(provider, keyId, expired ? 'expired' : ownLimitSpent ? 'key_limit' : null, summary);
    const expiresAt = info.expires_at ? Date.parse(info.expires_at) : Infinity;
    if (!expired && expiresAt - now <= EXPIRY_WARNING_MS) {
      this.pool.events.emit('key_expiring', { at: now, keyId, providers: this.pool.findKey(keyId).map((x) => x.provider.config.slug), expiresAt });
    }
    // The account first: the day's count below belongs to it.
    if (info.creator_user_id) await this.pool.learnCreator(keyId, info.creator_user_id, now);
    const daily = info.free_model_daily_requests;
    if (daily?.limit && daily.limit >= 1) {
      // The account's :free day, wherever this key serves a :free model (the gate is the account's).
      const free = this.pool.list().find((p) => p.plan.free && p.keys.has(keyId));
      if (free) {
        const used = daily.used ?? (daily.remaining !== null ? Math.max(0, daily.limit - daily.remaining) : undefined);
        // Nothing left today: the account's :free models cool until 00:00 UTC, without a call to find out.
        if (daily.remaining === 0) await this.pool.coolFromProbe(free, keyId, 'account_free', nextUtcMidnight(now), 'free_model_daily_requests', now);
        await this.pool.learnFromProbe(free, keyId, 'account_free', daily.limit, DAY_MS, now, used ?? undefined);
      }
    }
  }

  /** Keys whose GET /key shows they expire within a day (not yet expired), soonest first. */
  expiring(now: number): ExpiringKey[] {
    const out: ExpiringKey[] = [];
    for (const [keyId, probe] of this.results) {
      if (!probe.ok || !probe.expires_at) continue;
      const left = Date.parse(probe.expires_at) - now;
      if (left <= 0 || left > EXPIRY_WARNING_MS) continue;
      const providers = this.pool.findKey(keyId).map((x) => x.provider.config.slug);
      out.push({ key_id: keyId, providers, expires_at: probe.expires_at, expires_in_ms: left });
    }
    return out.sort((a, b) => a.expires_in_ms - b.expires_in_ms);
  }

  /**
   * Disables with `reason`, or (null) re-enables a key that GET /key disabled for what it no longer
   * shows: its own limit spent (`key_limit`), or its expiry (`expired`, an expiry moved on). Other
   * states are left alone: `insufficient_credits` (a 402 for the account's credits) too, since GET
   * /key cannot see the account's balance and re-enabling on no evidence only spends one more 402 per
   * key and probe; an admin reactivates those.
   */
  private async setReason(provider: ProviderRuntime, keyId: string, reason: 'invalid_key' | 'key_limit' | 'expired' | null, summary: ProbeSummary): Promise<void> {
    const view = provider.views.get(keyId);
    if (!view) return;
    const [current] = await this.pool.store.inspect([view], this.now());
    if (reason !== null && current.disabled === null) {
      await this.pool.setDisabled(keyId, reason, this.now());
      summary.disabled.push(keyId);
    } else if (reason === null && (current.disabled === 'key_limit' || current.disabled === 'expired')) {
      await this.pool.setDisabled(keyId, null, this.now());
      summary.reactivated.push(keyId);
    } else if (reason === 'expired' && current.disabled === 'key_limit') {
      await this.pool.setDisabled(keyId, reason, this.now());
    }
  }
}
