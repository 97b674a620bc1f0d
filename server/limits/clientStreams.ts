import type { Request, RequestHandler, Response } from 'express';
import { OrcheError } from '../../providers/errors';
import { clientIdentity } from '../auth/clientIdentity';
import { onResponseEnd } from '../http/requestLog';

export interface StreamLimit {
  /** Holds one stream for each `stream: true` body on the chat routes (after the body is read). */
  middleware: RequestHandler;
  /** From the route, once it knows how many streams it opens (a streaming fan-out's legs): holds the ones beyond the first; throws the 429 when that passes the limit. */
  holdMore(res: Response, extra: number): void;
}

/**
 * ORCHE_MAX_STREAMS_PER_CLIENT: how many streams one client identity may hold open at once on this
 * instance (a stream holds an upstream connection and a key for minutes). A streaming fan-out holds
 * one per leg. 0: unlimited. Counted after the body is read (only `stream: true` bodies count); the
 * slots free when the response ends or the client goes away.
 */
export function streamLimit(max: number, clientTokens: readonly string[]): StreamLimit {
  const open = new Map<string, number>();
  /** What this response holds, so that its end frees exactly that. */
  interface Held { id: string; n: number }
  const refused = (current: number, n: number) =>
    new OrcheError(429, 'too_many_streams', `This client has ${current} stream(s) open and asked for ${n} more; the limit is ${max} (ORCHE_MAX_STREAMS_PER_CLIENT)`, { open_streams: current, limit: max }, { 'Retry-After': '1' });
  const middleware: RequestHandler = (req: Request, res, next) => {
    const body = req.body as { stream?: unknown } | undefined;
    if (max <= 0 || body?.stream !== true) return next();
    const held: Held = { id: clientIdentity(req, clientTokens), n: 1 };
    const current = open.get(held.id) ?? 0;
    if (current + 1 > max) throw refused(current, 1);
    open.set(held.id, current + 1);
    res.locals.streamsHeld = held;
    onResponseEnd(res, () => {
      const left = (open.get(held.id) ?? held.n) - held.n;
      if (left > 0) open.set(held.id, left);
      else open.delete(held.id);
    });
    next();
  };
  const holdMore = (res: Response, extra: number) => {
    const held = res.locals.streamsHeld as Held | undefined;
    if (!held || extra <= 0) return;
    // The refusal names the request's full count against what others hold.
    const others = (open.get(held.id) ?? held.n) - held.n;
    if (others + held.n + extra > max) throw refused(others, held.n + extra);
    open.set(held.id, others + held.n + extra);
    held.n += extra;
  };
  return { middleware, holdMore };
}
