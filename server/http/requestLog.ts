import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Logger } from '../observe/logger';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Every response carries X-Request-Id, echoed from the request when it is a sane value. */
export const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.get('x-request-id');
  const id = incoming && SAFE_ID.test(incoming) ? incoming : randomUUID();
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  next();
};

/** Runs `fn` once, when the response is finished or the client went away, whichever comes first. */
export function onResponseEnd(res: Response, fn: () => void): void {
  let ran = false;
  const once = () => {
    if (ran) return;
    ran = true;
    fn();
  };
  res.on('finish', once);
  res.on('close', once);
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
