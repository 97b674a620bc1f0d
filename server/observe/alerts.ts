import type { KeyPool, ProviderRuntime } from '../../providers/keys/keyPool';
import type { Logger } from './logger';

export type AlertKind = 'provider_unavailable' | 'key_disabled' | 'provider_recovered' | 'key_expiring';

export interface Alert {
  kind: AlertKind;
  provider: string;
  key_id?: string;
  at: string;
  message: string;
}

export interface AlertOptions {
  webhook: string;
  intervalMs: number;
  /** A slow webhook is abandoned after this long; it never holds a request. */
  timeoutMs?: number;
}

/**
 * Webhook alerts: a provider with no usable key, a disabled key, a provider usable again, a key that
 * GET /key shows expiring within a day.
 * At most one alert per provider and kind per interval; sending is fire-and-forget.
 */
export class Alerts {
  private readonly lastSent = new Map<string, number>();
  /** Providers announced as having no usable key, until they recover. */
  private readonly down = new Set<string>();
  private readonly recheck = new Map<string, NodeJS.Timeout>();
  /** Checks of one provider run one after another, so two events cannot both see the same change. */
  private readonly queue = new Map<string, Promise<void>>();
  private readonly inflight = new Set<AbortController>();
  private failing = false;
  private stopped = false;

  constructor(
    private readonly pool: KeyPool,
    private readonly options: AlertOptions,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    const check = (provider: string) => this.enqueue(provider);
    pool.events.on('cooled', (e) => check(e.provider));
    pool.events.on('disabled', (e) => {
      this.send({ kind: 'key_disabled', provider: e.provider, key_id: e.keyId, message: `key ${e.keyId} of ${e.provider} was disabled (${e.reason})` });
      check(e.provider);
    });
    pool.events.on('recovered', (e) => check(e.provider));
    pool.events.on('key_expiring', (e) => {
      const at = new Date(e.expiresAt).toISOString();
      for (const provider of e.providers) this.send({ kind: 'key_expiring', provider, key_id: e.keyId, message: `key ${e.keyId} of ${provider} expires at ${at}` });
    });
    pool.events.on('reactivated', (e) => {
      for (const { provider } of pool.findKey(e.keyId)) check(provider.config.slug);
    });
    pool.events.on('outcome', (e) => {
      if (e.kind === 'success' && this.down.has(e.provider)) check(e.provider);
    });
  }

  private enqueue(slug: string): void {
    if (this.stopped) return;
    const prev = this.queue.get(slug) ?? Promise.resolve();
    const next = prev.then(() => this.check(slug)).catch(() => undefined);
    this.queue.set(slug, next);
  }

  private async check(slug: string): Promise<void> {
    const provider = this.pool.get(slug);
    if (!provider || provider.keys.size === 0 || this.stopped) return;
    const now = this.now();
    const keys = await this.pool.keyStatuses(provider, now);
    const usable = keys.some((k) => k.state === 'active');
    if (!usable && !this.down.has(slug)) {
      this.down.add(slug);
      const disabled = keys.filter((k) => k.state === 'disabled').length;
      this.send({ kind: 'provider_unavailable', provider: slug, message: `${slug} has no usable key (${keys.length - disabled} cooling, ${disabled} disabled)` });
    } else if (usable && this.down.has(slug)) {
      this.down.delete(slug);
      this.send({ kind: 'provider_recovered', provider: slug, message: `${slug} has a usable key again` });
    }
    if (!usable) this.scheduleRecheck(provider, keys.map((k) => k.cooldown_until ?? Infinity), now);
  }

  /** A cooldown ends without any event: look again when the soonest one is over. */
  private scheduleRecheck(provider: ProviderRuntime, deadlines: number[], now: number): void {
    const slug = provider.config.slug;
    clearTimeout(this.recheck.get(slug));
    const soonest = Math.min(...deadlines);
    if (!Number.isFinite(soonest)) return; // all disabled: a reactivation will tell
    const timer = setTimeout(() => {
      this.recheck.delete(slug);
      this.enqueue(slug);
    }, Math.max(0, soonest - now) + 20);
    timer.unref();
    this.recheck.set(slug, timer);
  }

  private send(a: Omit<Alert, 'at'>): void {
    if (this.stopped) return;
    const now = this.now();
    const id = `${a.provider}|${a.kind}`;
    const last = this.lastSent.get(id);
    if (last !== undefined && now - last < this.options.intervalMs) return;
    this.lastSent.set(id, now);
    const alert: Alert = { ...a, at: new Date(now).toISOString() };
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.options.timeoutMs ?? 3000);
    this.inflight.add(ac);
    fetch(this.options.webhook, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(alert), signal: ac.signal })
      .then(async (res) => {
        await res.arrayBuffer().catch(() => undefined);
        if (!res.ok) throw new Error(`the webhook answered ${res.status}`);
        this.failing = false;
      })
      .catch((err: unknown) => {
        // Logged once per failing streak; the webhook URL may hold a secret and is never logged.
        if (this.failing || this.stopped) return;
        this.failing = true;
        this.logger.warn('alert webhook failed', { kind: alert.kind, provider: alert.provider, error: ac.signal.aborted ? 'timeout' : err instanceof Error ? err.message : String(err) });
      })
      .finally(() => {
        clearTimeout(timer);
        this.inflight.delete(ac);
      });
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.recheck.values()) clearTimeout(t);
    this.recheck.clear();
    for (const ac of this.inflight) ac.abort();
  }
}
