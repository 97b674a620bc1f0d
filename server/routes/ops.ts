import { createHash } from 'node:crypto';
import { type Request, Router } from 'express';
import type { Config } from '../../config';
import { bearerMatches } from '../auth/bearer';
import { clientIdentity } from '../auth/clientIdentity';
import { OrcheError } from '../../providers/errors';
import type { AppContext } from '../context';
import { MAX_TRACKED_USERS } from '../limits/endUsers';
import { WINDOWS } from '../observe/usage';
import { MINUTE_MS } from '../../providers/limits/windows';

/** Whose end users and cost a reader of /api/usage sees: the admin token every client's, anyone else only their own. */
function usageReader(req: Request, config: Config): { admin: boolean; client: string } {
  const admin = config.adminToken !== undefined && bearerMatches(req.get('authorization'), [config.adminToken]) === 'ok';
  return { admin, client: clientIdentity(req, config.clientTokens) };
}

/** A client identity as shown: a token's is already a hash (`t:` + 12 of its hex), an address is hashed too. */
export function shownClient(id: string): string {
  if (id.startsWith('t:')) return id.slice(0, 14);
  if (id.startsWith('ip:')) return `ip:${createHash('sha256').update(id.slice(3)).digest('hex').slice(0, 12)}`;
  return id;
}

export function opsRoutes(ctx: AppContext, r: Router = Router()): Router {

  r.get('/metrics', async (_req, res) => {
    const text = await ctx.metrics.text();
    res.setHeader('Content-Type', ctx.metrics.contentType);
    res.send(text);
  });

  /** Usage per provider and key over the last minute, hour and day (whole clock minutes, the current one included). */
  r.get('/api/usage', (req, res) => {
    const provider = typeof req.query.provider === 'string' ? ctx.chat.resolve(req.query.provider) : undefined;
    const minutes = req.query.series === undefined ? 30 : Number(req.query.series);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 1440) throw new OrcheError(400, 'invalid_request', 'series must be a whole number of minutes from 1 to 1440');
    const now = ctx.now();
    // End users and costs are shown to the client that named them (its token, else its address), all of them to the admin (docs/design.md#end-user-privacy).
    const reader = usageReader(req, ctx.config);
    const users = ctx.endUsers.view(now, (client) => reader.admin || client === reader.client, (key) => ({ cost_usd: ctx.usage.costOf(key, now) }));
    const providers = (provider ? [provider] : ctx.pool.list()).map((p) => ctx.usage.report(p.config.slug, [...p.keys.keys()], now, minutes));
    res.json({
      generated_at: new Date(now).toISOString(),
      windows_ms: { minute: WINDOWS.minute * MINUTE_MS, hour: WINDOWS.hour * MINUTE_MS, day: WINDOWS.day * MINUTE_MS },
      providers,
      // Cost (usage.cost, USD) per client identity, most recently charged first, per instance.
      clients: ctx.usage
        .clientCosts(now)
        .filter((c) => reader.admin || c.client === reader.client)
        .slice(0, 100)
        .map((c) => ({ client: shownClient(c.client), cost_usd: c.cost_usd })),
      // The 100 end users seen most recently (named with X-Orche-User or `user`) of those this caller may see, counted per instance.
      end_users: {
        tracked: users.length,
        max_tracked: MAX_TRACKED_USERS,
        users: users.slice(0, 100),
      },
    });
  });

  return r;
}
