import { Router } from 'express';
import { errorBody, OrcheError } from '../../providers/errors';
import { type AppContext, summarize } from '../context';

function iso(t: number | null | undefined): string | null {
  return t ? new Date(t).toISOString() : null;
}

/** The edge hold (docs/design.md#scopes-and-accounts): every provider waits until `until`, whatever its keys. */
async function edgeView(ctx: AppContext) {
  const now = ctx.now();
  const until = await ctx.pool.edgeUntil(now);
  return { limited: until > 0, until: iso(until), remaining_ms: until > 0 ? until - now : 0 };
}

export function statusRoutes(ctx: AppContext, r: Router = Router()): Router {

  r.get('/health', async (_req, res) => {
    const [sums, edge] = await Promise.all([Promise.all(ctx.pool.list().map((p) => summarize(ctx, p))), edgeView(ctx)]);
    const store = ctx.pool.store.health();
    const available = edge.limited ? 0 : sums.filter((s) => s.available).length;
    const configured = sums.filter((s) => s.counts.total > 0).length;
    res.json({
      status: store.ok && available === configured ? 'ok' : 'degraded',
      uptime_s: Math.round((ctx.now() - ctx.startedAt) / 1000),
      providers: { total: sums.length, configured, available },
      store: { kind: store.kind, ok: store.ok },
      edge_limited_until: edge.until,
    });
  });

  // A store that is not ok still serves (Redis falls back to local state): that is degraded (/health),
  // not unready. With a shared Redis, every instance going unready at once would take the service out.
  r.get('/ready', async (_req, res) => {
    const sums = await Promise.all(ctx.pool.list().map((p) => summarize(ctx, p)));
    const anyUsable = sums.some((s) => s.available);
    if (anyUsable) {
      res.json({ ready: true });
      return;
    }
    const reason = 'no provider has a usable key';
    res.status(503).json({ ready: false, ...errorBody(new OrcheError(503, 'not_ready', reason)) });
  });

  r.get('/status', async (_req, res) => {
    const [sums, edge] = await Promise.all([Promise.all(ctx.pool.list().map((p) => summarize(ctx, p))), edgeView(ctx)]);
    res.json({
      service: 'orche',
      version: ctx.version,
      uptime_s: Math.round((ctx.now() - ctx.startedAt) / 1000),
      started_at: iso(ctx.startedAt),
      store: ctx.pool.store.health(),
      models_check: ctx.modelCheck,
      process_errors: ctx.processErrors,
      connections: ctx.connections?.() ?? null,
      edge,
      // GET /key's expires_at within a day (docs/design.md#what-get-key-is-used-for): replace these keys before they stop working.
      keys_expiring: ctx.prober.expiring(ctx.now()),
      providers: sums.map((s) => {
        const { config, totals } = s.provider;
        return {
          id: config.slug,
          name: config.name,
          model: config.model,
          model_listed: ctx.modelCheck.checked ? !ctx.modelCheck.missing.includes(config.model) : null,
          strategy: config.strategy,
          fallback: config.fallback ?? null,
          configured: s.counts.total > 0,
          available: s.available && !edge.limited,
          congested_until: iso(s.congestedUntil),
          keys: s.counts,
          requests: totals.requests,
          successes: totals.successes,
          rate_limited: totals.rateLimited,
          failures: totals.failures,
          avg_latency_ms: totals.requests ? Math.round(totals.latencyTotalMs / totals.requests) : null,
          rotations: ctx.history.count(config.slug),
        };
      }),
    });
  });

  const keyStatus = async (slug: string) => {
    const provider = ctx.pool.get(slug)!;
    const s = await summarize(ctx, provider);
    const last = ctx.history.last(slug);
    return {
      provider: slug,
      name: provider.config.name,
      model: provider.config.model,
      strategy: provider.config.strategy,
      available: s.available,
      keys: s.keys.map((k) => ({ ...k, probe: ctx.prober.get(k.id) })),
      rotations: ctx.history.count(slug),
      last_rotation: last ? { ...last, at: iso(last.at) } : null,
    };
  };

  r.get('/api/key-status', async (_req, res) => {
    const providers = await Promise.all(ctx.pool.list().map((p) => keyStatus(p.config.slug)));
    res.json({ providers, generated_at: iso(ctx.now()) });
  });

  r.get('/api/key-status/:provider', async (req, res) => {
    const provider = ctx.chat.resolve(req.params.provider);
    res.json(await keyStatus(provider.config.slug));
  });

  r.get('/api/models', async (_req, res) => {
    const sums = await Promise.all(ctx.pool.list().map((p) => summarize(ctx, p)));
    res.json(sums.map((s) => ({ id: s.provider.config.slug, name: s.provider.config.name, model: s.provider.config.model, available: s.available })));
  });

  r.get('/api/rotations', (req, res) => {
    const provider = typeof req.query.provider === 'string' ? ctx.chat.resolve(req.query.provider).config.slug : undefined;
    const limit = req.query.limit === undefined ? 50 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new OrcheError(400, 'invalid_request', 'limit must be a whole number from 1 to 500');
    res.json({ rotations: ctx.history.list(provider, limit).map((r) => ({ ...r, at: iso(r.at) })) });
  });

  return r;
}
