import { Router, type Response } from 'express';
import { contentOf } from '../../providers/chat';
import type { DispatchResult } from '../../providers/dispatcher';
import { OrcheError } from '../../providers/errors';
import type { AppContext } from '../context';
import { chatSchema, fanoutSchema, upstreamBody, validate } from '../validation';

/** An AbortSignal that fires when the client goes away before the answer is sent. */
export function clientSignal(res: Response): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

export function noteDispatch(res: Response, r: DispatchResult<unknown>): void {
  res.locals.provider = r.provider.config.slug;
  res.locals.keyId = r.keyId;
  res.locals.attempts = r.attempts;
}

export function chatRoutes(ctx: AppContext): Router {
  const r = Router();

  r.post('/api/chat', async (req, res) => {
    const input = validate(chatSchema, req.body);
    const provider = ctx.chat.resolve(input.provider);
    res.locals.provider = provider.config.slug;
    if (input.stream) throw new OrcheError(400, 'invalid_request', 'Streaming is not available on this route yet; omit "stream"');
    const result = await ctx.chat.complete(provider.config.slug, upstreamBody(input), clientSignal(res));
    noteDispatch(res, result);
    const c = contentOf(result.value);
    res.json({
      provider: result.provider.config.slug,
      model: c.model ?? result.provider.config.model,
      content: c.content,
      message: c.message,
      usage: c.usage,
      finish_reason: c.finishReason,
      latency_ms: result.latencyMs,
      attempts: result.attempts,
      key_id: result.keyId,
    });
  });

  r.post('/api/chat/fanout', async (req, res) => {
    const input = validate(fanoutSchema, req.body);
    const slugs = input.providers
      ? [...new Set(input.providers.map((name) => ctx.chat.resolve(name).config.slug))]
      : ctx.pool.list().filter((p) => p.keys.size > 0).map((p) => p.config.slug);
    if (input.stream) throw new OrcheError(400, 'invalid_request', 'Streaming fan-out is not available yet; omit "stream"');
    const started = ctx.now();
    const results = await ctx.chat.fanout(slugs, upstreamBody(input), input.timeout_ms, clientSignal(res));
    res.locals.fanout = results.map((x) => ({ provider: x.provider, ok: x.ok }));
    const succeeded = results.filter((x) => x.ok).length;
    res.json({ results, succeeded, failed: results.length - succeeded, latency_ms: ctx.now() - started });
  });

  return r;
}
