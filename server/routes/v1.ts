import { Router } from 'express';
import type { AppContext } from '../context';
import { clientRouting } from '../clientRouting';
import { openaiChatSchema, validate } from '../validation';
import { clientSignal, fairKeyOf, noteDispatch, streamChat } from './chat';

/**
 * The OpenAI-compatible API, so the official `openai` client works with `baseURL` set to orche:
 * bodies pass through (only `model` becomes the provider's slug), answers are the upstream's own.
 */
export function v1Routes(ctx: AppContext): Router {
  const r = Router();

  r.post('/v1/chat/completions', async (req, res) => {
    const routing = clientRouting(ctx.config.clientRouting, req);
    const input = validate(openaiChatSchema, req.body);
    const provider = ctx.chat.resolve(input.model);
    res.locals.provider = provider.config.slug;
    const body: Record<string, unknown> = { ...(req.body as Record<string, unknown>), ...routing };
    delete body.model;
    if (input.stream) return streamChat(ctx, res, provider.config.slug, body);
    const result = await ctx.chat.complete(provider.config.slug, body, clientSignal(res), fairKeyOf(res));
    noteDispatch(res, result);
    res.json(result.value);
  });

  r.get('/v1/models', (_req, res) => {
    const created = Math.floor(ctx.startedAt / 1000);
    res.json({
      object: 'list',
      data: ctx.pool.list().map((p) => ({
        id: p.config.slug,
        object: 'model',
        created,
        owned_by: 'orche',
        name: p.config.name,
        model: p.config.model,
        configured: p.keys.size > 0,
      })),
    });
  });

  return r;
}
