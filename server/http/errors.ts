import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { errorBody, OrcheError } from '../../providers/errors';
import type { Logger } from '../observe/logger';
import { tooDeepError } from './requestShape';

export function sendError(res: Response, err: OrcheError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
  res.status(err.status).json(errorBody(err));
}

/** The one place errors become orche's error body. */
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
