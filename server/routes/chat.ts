import { Router } from 'express';
import { contentOf } from '../../providers/dispatch/chat';
import { formatSse } from '../../providers/streams/sse';
import { streamFanout } from '../../providers/streams/streamFanout';
import type { AppContext } from '../context';
import { clientRouting } from '../http/clientRouting';
import { chatSchema, fanoutSchema, upstreamBody, validate } from '../http/validation';
import { clientSignal, fairKeyOf, noteDispatch, sseFor, streamChat } from './chatCall';

/** Fields of /api/chat and the fan-out that are orche's own and do not go upstream. */
const CHAT_OWN = ['provider'] as const;
const FANOUT_OWN = ['providers', 'timeout_ms'] as const;

export function chatRoutes(ctx: AppContext, r: Router = Router()): Router {

  r.post('/api/chat', async (req, res) => {
    const routing = clientRouting(ctx.config.clientRouting, req);
    const input = validate(chatSchema, req.body);
    const body = { ...upstreamBody(input, CHAT_OWN), ...routing };
    const provider = ctx.chat.resolve(input.provider);
    res.locals.provider = provider.config.slug;
    if (input.stream) return streamChat(ctx, res, provider.config.slug, body);
    await ctx.chat.complete(provider.config.slug, body, clientSignal(res), fairKeyOf(res), (result) => {
      noteDispatch(res, result);
      const c = contentOf(result.value.body);
      res.json({
        provider: result.provider.config.slug,
        model: c.model ?? result.provider.config.model,
        content: c.content,
        reasoning: c.reasoning,
        reasoning_details: c.reasoningDetails,
        tool_calls: c.toolCalls,
        message: c.message,
        usage: c.usage,
        finish_reason: c.finishReason,
        latency_ms: result.latencyMs,
        attempts: result.attempts,
        key_id: result.keyId,
      });
    });
  });

  r.post('/api/chat/fanout', async (req, res) => {
    const routing = clientRouting(ctx.config.clientRouting, req);
    const input = validate(fanoutSchema, req.body);
    const body = { ...upstreamBody(input, FANOUT_OWN), ...routing };
    const slugs = input.providers
      ? [...new Set(input.providers.map((name) => ctx.chat.resolve(name).config.slug))]
      : ctx.pool.list().filter((p) => p.keys.size > 0).map((p) => p.config.slug);
    // Each leg is one upstream call: charged here, where the legs are known (docs/design.md#client-identity-and-per-client-limits).
    await ctx.chargeLegs(req, res, slugs.length);
    if (input.stream) {
      const signal = clientSignal(res);
      const out = sseFor(ctx, res);
      out.open();
      await streamFanout(ctx.chat, slugs, body, input.timeout_ms, signal, (event, data) => out.write(formatSse(data, event)), fairKeyOf(res));
      out.end();
      return;
    }
    const started = ctx.now();
    const results = await ctx.chat.fanout(slugs, body, input.timeout_ms, clientSignal(res), fairKeyOf(res));
    res.locals.fanout = results.map((x) => ({ provider: x.provider, ok: x.ok }));
    const succeeded = results.filter((x) => x.ok).length;
    res.json({ results, succeeded, failed: results.length - succeeded, latency_ms: ctx.now() - started });
  });

  return r;
}
