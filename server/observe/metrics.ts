import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KeyPool } from '../../providers/keys/keyPool';
import type { FanoutResult } from '../../providers/dispatch/chat';
import { onResponseEnd } from '../http/requestLog';

/** What the fan-out route leaves in res.locals for the metrics middleware. */
export type FanoutNote = Array<Pick<FanoutResult, 'provider' | 'ok'>>;

/**
 * Prometheus metrics on a registry of this app's own (several apps may share one process).
 * Counters listen to the pool's events; the key-state gauge is read from the pool on each scrape.
 * Labels carry key ids, never keys.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly upstreamCalls: Counter<'provider' | 'key_id' | 'outcome'>;
  private readonly upstreamLatency: Histogram<'provider'>;
  private readonly tokens: Counter<'provider' | 'key_id'>;
  private readonly cost: Counter<'provider' | 'key_id'>;
  private readonly rotations: Counter<'provider' | 'reason'>;
  private readonly cooldowns: Counter<'provider' | 'scope' | 'reason'>;
  private readonly disabled: Counter<'provider' | 'reason'>;
  private readonly congestions: Counter<'provider'>;
  private readonly requestDuration: Histogram<'route' | 'provider' | 'status'>;
  private readonly fanout: Counter<'provider' | 'result'>;

  constructor(pool: KeyPool, now: () => number) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.upstreamCalls = new Counter({
      name: 'orche_upstream_calls_total',
      help: 'Upstream calls by provider, key id and outcome (success, cool, congested, disable, retry, client_error)',
      labelNames: ['provider', 'key_id', 'outcome'],
      registers,
    });
    this.upstreamLatency = new Histogram({
      name: 'orche_upstream_call_duration_seconds',
      help: 'Duration of one upstream call by provider',
      labelNames: ['provider'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.tokens = new Counter({ name: 'orche_tokens_total', help: 'Tokens (usage.total_tokens) of successful upstream calls, streams included', labelNames: ['provider', 'key_id'], registers });
    this.cost = new Counter({ name: 'orche_cost_usd_total', help: 'What the upstream charged (usage.cost, USD) for calls that reported it, streams included', labelNames: ['provider', 'key_id'], registers });
    this.rotations = new Counter({ name: 'orche_rotations_total', help: 'Changes of the key in use because of an outcome', labelNames: ['provider', 'reason'], registers });
    this.cooldowns = new Counter({ name: 'orche_cooldowns_total', help: 'Keys (or their accounts) put to cool, by scope and reason', labelNames: ['provider', 'scope', 'reason'], registers });
    this.disabled = new Counter({ name: 'orche_keys_disabled_total', help: 'Keys disabled, by reason', labelNames: ['provider', 'reason'], registers });
    this.congestions = new Counter({ name: 'orche_congestions_total', help: 'Times a provider\'s model was marked congested upstream', labelNames: ['provider'], registers });
    this.requestDuration = new Histogram({
      name: 'orche_http_request_duration_seconds',
      help: 'Duration of HTTP requests served by orche, by route, provider and status',
      labelNames: ['route', 'provider', 'status'],
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.fanout = new Counter({ name: 'orche_fanout_results_total', help: 'Fan-out legs by provider and result (ok, failed)', labelNames: ['provider', 'result'], registers });
    new Gauge({
      name: 'orche_keys',
      help: 'Keys by state (active, cooling, disabled) per provider, read at scrape time',
      labelNames: ['provider', 'state'],
      registers,
      async collect() {
        const t = now();
        for (const p of pool.list()) {
          const counts = { active: 0, cooling: 0, disabled: 0 };
          for (const k of await pool.keyStatuses(p, t)) counts[k.state]++;
          for (const [state, n] of Object.entries(counts)) this.set({ provider: p.config.slug, state }, n);
        }
      },
    });

    pool.events.on('outcome', (e) => {
      // An unservable call keeps the `client_error` label that dashboards and alerts count as no key's failure.
      this.upstreamCalls.inc({ provider: e.provider, key_id: e.keyId, outcome: e.kind === 'unservable' ? 'client_error' : e.kind });
      this.upstreamLatency.observe({ provider: e.provider }, e.latencyMs / 1000);
    });
    pool.events.on('usage', (e) => {
      if (e.tokens > 0) this.tokens.inc({ provider: e.provider, key_id: e.keyId }, e.tokens);
      if (e.cost > 0) this.cost.inc({ provider: e.provider, key_id: e.keyId }, e.cost);
    });
    pool.events.on('rotated', (e) => this.rotations.inc({ provider: e.provider, reason: e.reason }));
    pool.events.on('cooled', (e) => this.cooldowns.inc({ provider: e.provider, scope: e.scope, reason: e.reason }));
    pool.events.on('disabled', (e) => this.disabled.inc({ provider: e.provider, reason: e.reason }));
    pool.events.on('congested', (e) => this.congestions.inc({ provider: e.provider }));
  }

  /** Times every request; the route label is the matched pattern, never the raw path (bounded cardinality). */
  middleware(now: () => number): RequestHandler {
    return (req, res, next) => {
      const started = now();
      onResponseEnd(res, () => {
        const route = (req.route?.path as string | undefined) ?? 'unmatched';
        const provider = typeof res.locals.provider === 'string' ? res.locals.provider : '';
        // A response the client abandoned counts as 499, as in the request log.
        const status = res.writableFinished ? String(res.statusCode) : '499';
        this.requestDuration.observe({ route, provider, status }, (now() - started) / 1000);
        const legs = res.locals.fanout as FanoutNote | undefined;
        for (const leg of legs ?? []) this.fanout.inc({ provider: leg.provider, result: leg.ok ? 'ok' : 'failed' });
      });
      next();
    };
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
