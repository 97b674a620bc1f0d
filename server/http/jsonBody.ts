import type { IncomingMessage } from 'node:http';
import express, { type RequestHandler } from 'express';
import { verifyJsonDepth } from './requestShape';

/** ORCHE_BODY_LIMIT (`512kb`, `1mb`, bytes) in bytes, as express.json reads it (multiples of 1,024). */
export function limitBytes(limit: string): number {
  const m = /^(\d+)(b|kb|mb)?$/i.exec(limit.trim());
  if (!m) throw new Error(`not a size: ${limit}`);
  const unit = (m[2] ?? 'b').toLowerCase();
  return Number(m[1]) * (unit === 'mb' ? 1024 * 1024 : unit === 'kb' ? 1024 : 1);
}

/** The common case only: plain JSON, UTF-8 (said or implied), not compressed. */
const PLAIN_JSON = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;

/** An error shaped as body-parser's, so the error handler maps it the same way. */
function bodyError(status: number, type: string, message: string): Error {
  return Object.assign(new Error(message), { status, statusCode: status, type, expose: true });
}

/** Reads a body framed by Content-Length; `done` once, with the bytes or a body-parser-shaped error. */
function readBody(req: IncomingMessage, length: number, done: (err: Error | undefined, buf?: Buffer) => void): void {
  const parts: Buffer[] = [];
  let received = 0;
  const onData = (part: Buffer) => {
    parts.push(part);
    received += part.length;
  };
  const finish = (err: Error | undefined, buf?: Buffer) => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('close', onClose);
    req.off('error', finish);
    done(err, buf);
  };
  // Node's parser frames the body by Content-Length: any other count means the client went away.
  const onEnd = () => (received === length ? finish(undefined, parts.length === 1 ? parts[0] : Buffer.concat(parts, received)) : finish(bodyError(400, 'request.size.invalid', 'request size did not match content length')));
  const onClose = () => finish(bodyError(400, 'request.aborted', 'request aborted'));
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('close', onClose);
  req.on('error', finish);
}

/**
 * express.json with the depth check, and a fast path for what every client sends: a plain UTF-8
 * JSON body with a Content-Length within the limit. That body is read, checked and parsed here, to
 * the same result and the same errors (400 invalid_json, 400 too_deep); body-parser's type checks,
 * charset decoding and stream plumbing cost ~100 µs a request under load (issue 21). Everything
 * else (no length, over the limit, compressed, another charset or type) goes to express.json, as before.
 */
export function jsonBody(limit: string): RequestHandler {
  const max = limitBytes(limit);
  const full = express.json({ limit, verify: verifyJsonDepth });
  return (req, res, next) => {
    const type = req.headers['content-type'];
    const length = Number(req.headers['content-length']);
    const plain =
      type !== undefined && PLAIN_JSON.test(type) && length > 0 && length <= max && req.headers['content-encoding'] === undefined && req.headers['transfer-encoding'] === undefined;
    if (!plain) return full(req, res, next);
    readBody(req, length, (err, buf) => {
      if (err) return next(err);
      // The request is read: whatever follows, express.json must not read it again.
      (req as IncomingMessage & { _body?: boolean })._body = true;
      try {
        verifyJsonDepth(req, res, buf!);
      } catch (deep) {
        return next(bodyError(400, (deep as { type: string }).type, 'too deep'));
      }
      const text = buf!.toString('utf8');
      // body-parser's strict mode: an object or an array, nothing else at the top. A BOM is skipped, as its decoder does.
      const first = /^[\ufeff\x20\x09\x0a\x0d]*(.)/.exec(text)?.[1];
      if (first !== '{' && first !== '[') return next(bodyError(400, 'entity.parse.failed', 'not a JSON object or array'));
      try {
        req.body = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
      } catch {
        return next(bodyError(400, 'entity.parse.failed', 'invalid JSON'));
      }
      next();
    });
  };
}
