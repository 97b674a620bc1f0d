import { Router } from 'express';
import { OrcheError } from '../../providers/errors';
import type { AppContext } from '../context';
import { bearerMatches } from '../bearer';
import { clientIdentity } from '../clientIdentity';
import { MAX_TRACKED_USERS } from '../endUsers';
import { WINDOWS } from '../usage';

const MINUTE_MS = 60_000;

export function opsRoutes(ctx: AppContext): Router {
  const r = Router();

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
    // End users are shown to the client that named them (its token, else its address), all of them to the admin (SPEC §8).
    const { adminToken, clientTokens } = ctx.config;
    const admin = adminToken !== undefined && bearerMatches(req.get('authorization'), [adminToken]) === 'ok';
    const caller = clientIdentity(req, clientTokens);
    const users = ctx.endUsers.view(now, (client) => admin || client === caller);
    const providers = (provider ? [provider] : ctx.pool.list()).map((p) => ctx.usage.report(p.config.slug, [...p.keys.keys()], now, minutes));
    res.json({
      generated_at: new Date(now).toISOString(),
      windows_ms: { minute: WINDOWS.minute * MINUTE_MS, hour: WINDOWS.hour * MINUTE_MS, day: WINDOWS.day * MINUTE_MS },
      providers,
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
