import type { Request, RequestHandler } from 'express';
import { OrcheError } from '../providers/errors';
import { clientIdentity } from './clientIdentity';
import { onResponseEnd } from './middleware';

/**
 * ORCHE_MAX_STREAMS_PER_CLIENT: how many streams one client identity may hold open at once on this
 * instance (a stream holds an upstream connection and a key for minutes). A streaming fan-out holds
 * one per leg. 0: unlimited. Counted after the body is read (only `stream: true` bodies count); a
 * slot frees when the response ends or the client goes away.
 */
export function streamLimit(max: number, clientTokens: readonly string[], legs: (req: Request) => number): RequestHandler {
  const open = new Map<string, number>();
  return (req, res, next) => {
    const body = req.body as { stream?: unknown } | undefined;
    if (max <= 0 || body?.stream !== true) return next();
    const id = clientIdentity(req, clientTokens);
    const n = Math.max(1, legs(req));
    const current = open.get(id) ?? 0;
    if (current + n > max) {
      throw new OrcheError(429, 'too_many_streams', `This client has ${current} stream(s) open and asked for ${n} more; the limit is ${max} (ORCHE_MAX_STREAMS_PER_CLIENT)`, { open_streams: current, limit: max }, { 'Retry-After': '1' });
    }
    open.set(id, current + n);
    onResponseEnd(res, () => {
      const left = (open.get(id) ?? n) - n;
      if (left > 0) open.set(id, left);
      else open.delete(id);
    });
    next();
  };
}
