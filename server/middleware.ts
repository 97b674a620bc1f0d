import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { OrcheError } from '../providers/errors';
import { bearerMatches, bearerToken } from './bearer';
import { identityOf } from './clientIdentity';
import type { Logger } from './logger';
import { tooDeepError } from './requestShape';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Every response carries X-Request-Id, echoed from the request when it is a sane value. */
export const requestId: RequestHandler = (req, res, next) => {
  const incoming = req.get('x-request-id');
  const id = incoming && SAFE_ID.test(incoming) ? incoming : randomUUID();
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  next();
};

const END_HOOKS = Symbol('orche.responseEndHooks');
type Hooked = Response & { [END_HOOKS]?: Array<() => void> };

/**
 * Runs `fn` once, when the response is finished or the client went away, whichever comes first.
 * The hooks of one response share one pair of listeners: the shutdown count, the request log and
 * the metrics each added two, and adding listeners was a visible cost per request (issue 21).
 */
export function onResponseEnd(res: Response, fn: () => void): void {
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
        // By its hash only (server/endUsers.ts): a name never reaches a log line.
        end_user: l.endUser,
      });
    });
    next();
  };
}

export function sendError(res: Response, err: OrcheError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.status(err.status).json({ error: { code: err.status, type: err.type, message: err.message, ...err.extra } });
}

/** The one place errors become the SPEC's error body. */
export function errorHandler(logger: Logger) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    void _next;
    if (err instanceof OrcheError) return sendError(res, err);
    const e = err as { type?: string; status?: number; statusCode?: number; limit?: number };
    if (e?.type === 'entity.too.deep') return sendError(res, tooDeepError());
    if (e?.type === 'entity.parse.failed') return sendError(res, new OrcheError(400, 'invalid_json', 'The request body is not valid JSON'));
    if (e?.type === 'entity.too.large') {
      return sendError(res, new OrcheError(413, 'payload_too_large', `The request body is larger than the limit (${e.limit} bytes)`));
    }
    const status = e?.status ?? e?.statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      return sendError(res, new OrcheError(status, String(e.type ?? 'bad_request').replace(/\W+/g, '_'), 'The request could not be read'));
    }
    logger.error('unhandled error', { request_id: res.locals.requestId, error: err instanceof Error ? err.message : String(err) });
    sendError(res, new OrcheError(500, 'internal_error', 'Internal error; it has been logged'));
  };
}

/** An unknown path is named back only in part: a client's 5 KB path is not echoed at full length. */
export const notFound: RequestHandler = (req) => {
  const path = req.path.length > 64 ? `${req.path.slice(0, 64)}…` : req.path;
  throw new OrcheError(404, 'not_found', `No route for ${req.method} ${path}`);
};

export function adminAuth(adminToken: string | undefined): RequestHandler {
  return (req, _res, next) => {
    if (!adminToken) {
      throw new OrcheError(403, 'admin_disabled', 'Admin routes are disabled: set ORCHE_ADMIN_TOKEN and send it as Authorization: Bearer <token>');
    }
    const verdict = bearerMatches(req.get('authorization'), [adminToken]);
    if (verdict === 'missing') throw new OrcheError(401, 'unauthorized', 'This admin route needs Authorization: Bearer <ORCHE_ADMIN_TOKEN>');
    if (verdict === 'wrong') throw new OrcheError(403, 'forbidden', 'The admin token is not valid');
    next();
  };
}

/**
 * The chat routes' gate: a configured client token (401 without one, 403 for a wrong one) when
 * ORCHE_CLIENT_TOKENS is set. It also settles who the client is, once (res.locals.clientId), for
 * every per-client limit after it: requests per minute, open streams, fair turns.
 */
export function clientAuth(tokens: string[]): RequestHandler {
  return (req, res, next) => {
    if (tokens.length === 0) {
      res.locals.clientId = identityOf(req, undefined);
      return next();
    }
    const authorization = req.get('authorization');
    const verdict = bearerMatches(authorization, tokens);
    if (verdict === 'missing') throw new OrcheError(401, 'unauthorized', 'This route needs Authorization: Bearer <client token>');
    if (verdict === 'wrong') throw new OrcheError(403, 'forbidden', 'The client token is not valid');
    res.locals.clientId = identityOf(req, bearerToken(authorization));
    next();
  };
}
