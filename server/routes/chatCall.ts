/** What both chat routes (`/api/chat` and `/v1`) share: the client's abort signal, its fair key, the dispatch notes, a relayed stream. */
import { type Response } from 'express';
import type { DispatchResult } from '../../providers/dispatch/dispatcher';
import type { AppContext } from '../context';
import { onResponseEnd } from '../http/requestLog';
import { relaySink, SseResponse } from '../http/sseResponse';
import { ClientGone } from '../../providers/dispatch/cancel';

/** The client's stream, bounded like the relay that feeds it: a client that stops reading is closed (docs/design.md#streams-that-outlive-their-reader). */
export function sseFor(ctx: AppContext, res: Response): SseResponse {
  const { requestTimeoutMs, maxStreamMs } = ctx.config.rotation;
  return new SseResponse(res, { idleMs: requestTimeoutMs, maxMs: maxStreamMs }, () =>
    ctx.logger.warn('stream closed: the client stopped reading', { request_id: res.locals.requestId, provider: res.locals.provider, waited_ms_max: requestTimeoutMs }),
  );
}

/** Aborted when the client goes away before the answer is sent (on the response's shared end hooks). */
export function clientSignal(res: Response): ClientGone {
  const gone = new ClientGone();
  onResponseEnd(res, () => {
    if (!res.writableFinished) gone.abort();
  });
  return gone;
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
