import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from '../observe/logger';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Every response carries X-Request-Id, echoed from the request when it is a sane value. */
export const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : randomUUID();
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  next();
};

const END_HOOKS = Symbol('orche.responseEndHooks');
type Hooked = ServerResponse & { [END_HOOKS]?: Array<() => void> };

/**
 * Runs `fn` once, when the response is finished or the client went away, whichever comes first.
 * The hooks of one response share one pair of listeners: the connection bounds, the shutdown count,
 * the request log and the metrics each added two, and adding listeners was a visible cost per request.
 */
export function onResponseEnd(res: ServerResponse, fn: () => void): void {
  const r = res as Hooked;
  const hooks = r[END_HOOKS];
  if (hooks) {
    hooks.push(fn);
    return;
  }
  r[END_HOOKS] = [fn];
  // Each hook runs once, in the order added; one added after 'finish' waits for 'close', as before.
  const run = () => {
    const due = r[END_HOOKS]!;
    r[END_HOOKS] = [];
    for (const f of due) f();
  };
  res.on('finish', run);
  res.on('close', run);
}

/** One log line per request, written when the response is finished (or the client went away). */
export function requestLog(logger: Logger, now: () => number): RequestHandler {
  return (req, res, next) => {
    const started = now();
    onResponseEnd(res, () => {
      const l = res.locals;
      logger.info('request', {
        request_id: l.requestId,
        method: req.method,
        route: (req.route?.path as string | undefined) ?? req.path,
        status: res.writableFinished ? res.statusCode : 499,
        latency_ms: now() - started,
        provider: l.provider,
        key_id: l.keyId,
        attempts: l.attempts,
        // By its hash only (server/limits/endUsers.ts): a name never reaches a log line.
        end_user: l.endUser,
      });
    });
    next();
  };
}
