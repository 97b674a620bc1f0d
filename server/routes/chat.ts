import { Router, type Response } from 'express';
import { contentOf } from '../../providers/dispatch/chat';
import type { DispatchResult } from '../../providers/dispatch/dispatcher';
import { formatSse } from '../../providers/streams/sse';
import { streamFanout } from '../../providers/streams/streamFanout';
import type { AppContext } from '../context';
import { relaySink, SseResponse } from '../http/sseResponse';
import { clientRouting } from '../http/clientRouting';
import { chatSchema, fanoutSchema, upstreamBody, validate } from '../http/validation';

/** An AbortSignal that fires when the client goes away before the answer is sent. */
export function clientSignal(res: Response): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

/** Who the request is for, as server/limits/endUsers.ts's requestScope set it (fair turns while waiting). */
export function fairKeyOf(res: Response): string | undefined {
  return typeof res.locals.fairKey === 'string' ? res.locals.fairKey : undefined;
}

/** Who served the request, for the request's log line and for the client (X-Orche-*). */
export function noteDispatch(res: Response, r: DispatchResult<unknown>): void {
  res.locals.provider = r.provider.config.slug;
  res.locals.keyId = r.keyId;
  res.locals.attempts = r.attempts;
  res.setHeader('X-Orche-Provider', r.provider.config.slug);
  res.setHeader('X-Orche-Key-Id', r.keyId);
  res.setHeader('X-Orche-Attempts', String(r.attempts));
}

/** The client's stream, bounded like the relay that feeds it: a client that stops reading is closed (SPEC §8). */
function sseFor(ctx: AppContext, res: Response): SseResponse {
  const { requestTimeoutMs, maxStreamMs } = ctx.config.rotation;
  return new SseResponse(res, { idleMs: requestTimeoutMs, maxMs: maxStreamMs }, () =>
    ctx.logger.warn('stream closed: the client stopped reading', { request_id: res.locals.requestId, provider: res.locals.provider, waited_ms_max: requestTimeoutMs }),
  );
}

/**
 * A streaming chat: failures before the first byte throw (and become the JSON error body, so the
 * client sees a real status); after it, the stream is relayed as it arrives.
 */
export async function streamChat(ctx: AppContext, res: Response, slug: string, body: Record<string, unknown>): Promise<void> {
  const signal = clientSignal(res);
  const opened = await ctx.chat.openStream(slug, body, signal, fairKeyOf(res));
  noteDispatch(res, opened);
  const out = sseFor(ctx, res);
  out.open();
  await ctx.chat.relayStream(opened, relaySink(out), signal);
  out.end();
}

/** Fields of /api/chat and the fan-out that are orche's own and do not go upstream. */
const CHAT_OWN = ['provider'] as const;
const FANOUT_OWN = ['providers', 'timeout_ms'] as const;

export function chatRoutes(ctx: AppContext): Router {
  const r = Router();

  r.post('/api/chat', async (req, res) => {
    const routing = clientRouting(ctx.config.clientRouting, req);
    const input = validate(chatSchema, req.body);
    const body = { ...upstreamBody(input, CHAT_OWN), ...routing };
    const provider = ctx.chat.resolve(input.provider);
    res.locals.provider = provider.config.slug;
    if (input.stream) return streamChat(ctx, res, provider.config.slug, body);
    const result = await ctx.chat.complete(provider.config.slug, body, clientSignal(res), fairKeyOf(res));
    noteDispatch(res, result);
    const c = contentOf(result.value);
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

  r.post('/api/chat/fanout', async (req, res) => {
    const routing = clientRouting(ctx.config.clientRouting, req);
    const input = validate(fanoutSchema, req.body);
    const body = { ...upstreamBody(input, FANOUT_OWN), ...routing };
    const slugs = input.providers
      ? [...new Set(input.providers.map((name) => ctx.chat.resolve(name).config.slug))]
      : ctx.pool.list().filter((p) => p.keys.size > 0).map((p) => p.config.slug);
    // Each leg is one upstream call: charged here, where the legs are known (SPEC §7).
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
