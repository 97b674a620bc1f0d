import { type Response, Router } from 'express';
import { OrcheError } from '../../providers/errors';
import type { ProviderRuntime } from '../../providers/keys/keyPool';
import type { AppContext } from '../context';
import { clientRouting } from '../http/clientRouting';
import { validateOpenAiChat } from '../http/validation';
import type { JsonAnswer } from '../../providers/dispatch/chat';
import { clientSignal, fairKeyOf, noteDispatch, streamChat } from './chatCall';

/**
 * The upstream's chat.completion as it came, with `system_fingerprint: null` when it has none.
 * OpenRouter omits the field for many providers, and @openrouter/sdk (its schema: nullable but
 * required) then rejects a complete answer (OpenRouterTeam/benchmark-harness PR #23, 2026-08-12,
 * fills the same default). Nothing else changes; a value the upstream sent, null included, stays.
 * The text is the one the body was parsed from (a success is always an object): the field goes in
 * first, with no second serialisation (issue 21).
 */
export function completionForClients({ body, text }: JsonAnswer): string {
  const b = body as Record<string, unknown>;
  if (b.object !== 'chat.completion' || 'system_fingerprint' in b) return text;
  const at = text.indexOf('{') + 1;
  return `${text.slice(0, at)}"system_fingerprint":null,${text.slice(at)}`;
}

/**
 * What res.json sends here (no ETag, never HEAD: a POST), headers set once and the body written
 * once: Express's send would look up the charset, the freshness and the method for each answer
 * (~30 µs a request under load, issue 21).
 */
function sendJson(res: Response, text: string): void {
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/**
 * The OpenAI-compatible API, so the official `openai` client works with `baseURL` set to orche:
 * bodies pass through (only `model` becomes the provider's slug), answers are the upstream's own.
 */
export function v1Routes(ctx: AppContext, r: Router = Router()): Router {

  r.post('/v1/chat/completions', async (req, res) => {
    const routing = clientRouting(ctx.config.clientRouting, req);
    const input = validateOpenAiChat(req.body);
    const provider = ctx.chat.resolve(input.model);
    res.locals.provider = provider.config.slug;
    // As the client sent it: each upstream call's body is a copy with the provider's model (upstreamRequest).
    const sent = req.body as Record<string, unknown>;
    const body = Object.keys(routing).length ? { ...sent, ...routing } : sent;
    if (input.stream) return streamChat(ctx, res, provider.config.slug, body);
    await ctx.chat.complete(provider.config.slug, body, clientSignal(res), fairKeyOf(res), (result) => {
      noteDispatch(res, result);
      sendJson(res, completionForClients(result.value));
    });
  });

  const modelOf = (p: ProviderRuntime, id: string) => ({
    id,
    object: 'model',
    created: Math.floor(ctx.startedAt / 1000),
    owned_by: 'orche',
    name: p.config.name,
    provider: p.config.slug,
    model: p.config.model,
    configured: p.keys.size > 0,
  });

  r.get('/v1/models', (_req, res) => {
    res.json({ object: 'list', data: ctx.pool.list().map((p) => modelOf(p, p.config.slug)) });
  });

  // One model (the openai client's models.retrieve): a provider ID, or a configured slug, whose
  // slash makes it several path segments (/v1/models/z-ai/glm-4.5) — or one, when sent encoded.
  r.get('/v1/models/*id', (req, res) => {
    const segments = (req.params as { id: string | string[] }).id;
    const id = Array.isArray(segments) ? segments.join('/') : segments;
    const provider = ctx.chat.find(id);
    if (!provider) {
      const shown = id.length > 64 ? `${id.slice(0, 64)}…` : id;
      throw new OrcheError(404, 'model_not_found', `The model "${shown}" does not exist here; GET /v1/models lists the models`, { model: shown });
    }
    // Asked by provider ID (any case): answered by its ID; asked by slug: by the slug.
    res.json(modelOf(provider, provider.config.model === id ? id : provider.config.slug));
  });

  return r;
}
