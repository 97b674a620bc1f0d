import { Router } from 'express';
import { ConfigError } from '../../config';
import { OrcheError } from '../../providers/errors';
import type { AppContext } from '../context';
import { adminAuth } from '../auth/guards';

export function adminRoutes(ctx: AppContext, r: Router = Router()): Router {
  const guard = adminAuth(ctx.config.adminToken);

  r.post('/api/keys/reset', guard, async (req, res) => {
    const name = typeof req.query.provider === 'string' ? req.query.provider : undefined;
    const provider = name ? ctx.chat.resolve(name) : undefined;
    await ctx.pool.resetCooldowns(provider, ctx.now());
    // Requests waiting in line need not wait for the deadlines that were just cleared.
    ctx.chat.dispatcher.kickAll();
    ctx.logger.info('cooldowns reset', { provider: provider?.config.slug ?? 'all' });
    res.json({ reset: provider?.config.slug ?? 'all' });
  });

  const keyAction = (action: 'reactivate' | 'disable') =>
    r.post(`/api/keys/:id/${action}`, guard, async (req, res) => {
      const id = String(req.params.id);
      const found = ctx.pool.findKey(id);
      if (found.length === 0) throw new OrcheError(404, 'unknown_key', `No key with id ${id.slice(0, 64)}; see GET /api/key-status for ids`);
      await ctx.pool.setDisabled(id, action === 'disable' ? 'manual' : null, ctx.now());
      if (action === 'reactivate') ctx.chat.dispatcher.kickAll();
      ctx.logger.info(`key ${action}d`, { key_id: id });
      res.json({ id, state: action === 'disable' ? 'disabled' : 'active', providers: found.map((f) => f.provider.config.slug) });
    });
  keyAction('reactivate');
  keyAction('disable');

  // Re-reads the environment file; a bad file is refused with the start-up message and nothing changes.
  r.post('/api/admin/reload', guard, (_req, res) => {
    try {
      res.json(ctx.reload());
    } catch (err) {
      if (err instanceof ConfigError) {
        ctx.logger.error('reload refused: configuration error', { error: err.message });
        throw new OrcheError(400, 'invalid_config', err.message);
      }
      throw err;
    }
  });

  return r;
}
