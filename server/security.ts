import cors from 'cors';
import type { RequestHandler } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import type { Config } from '../config';
import { OrcheError } from '../providers/errors';
import { clientIdentity } from './clientIdentity';
import { bearerMatches, sendError } from './middleware';

/** Headers for an API that serves JSON to browsers; the dashboard sets its own CSP. */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-site');
  res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
  next();
};

/**
 * CORS for the browsers named in ORCHE_CORS_ORIGINS (`*` allows any origin); none named: no CORS
 * headers at all, so only same-origin pages can read answers.
 */
export function corsPolicy(origins: string[]): RequestHandler {
  const any = origins.includes('*');
  return cors({
    origin: any ? '*' : origins.length ? origins : false,
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-Request-Id'],
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit', 'RateLimit-Policy', 'X-Orche-Provider', 'X-Orche-Key-Id', 'X-Orche-Attempts'],
    maxAge: 600,
  });
}

/** Routes that show key state; private with ORCHE_PROTECT_STATUS=true (liveness and readiness stay open). */
export const STATUS_PATHS = ['/status', '/api/key-status', '/api/models', '/api/rotations', '/api/usage', '/metrics'];

export function statusAuth(config: Config): RequestHandler {
  const tokens = [...config.clientTokens, ...(config.adminToken ? [config.adminToken] : [])];
  return (req, _res, next) => {
    if (!config.protectStatus) return next();
    if (tokens.length === 0) {
      throw new OrcheError(403, 'status_protected', 'Status routes are private (ORCHE_PROTECT_STATUS=true) but no ORCHE_CLIENT_TOKENS or ORCHE_ADMIN_TOKEN is set');
    }
    const verdict = bearerMatches(req.get('authorization'), tokens);
    if (verdict === 'missing') throw new OrcheError(401, 'unauthorized', 'Status routes need Authorization: Bearer <client or admin token>');
    if (verdict === 'wrong') throw new OrcheError(403, 'forbidden', 'The token is not valid');
    next();
  };
}

/**
 * ORCHE_CLIENT_RPM requests per minute per client on the chat routes, with the IETF `RateLimit`
 * headers (draft-8) and a 429 in the SPEC's error shape. `store` shares counts across instances (Redis).
 */
export function clientLimiter(config: Config, store?: Store): RequestHandler {
  if (!config.clientRpm) return (_req, _res, next) => next();
  return rateLimit({
    windowMs: 60_000,
    limit: config.clientRpm,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: (req) => clientIdentity(req, config.clientTokens),
    store,
    // A store outage (Redis gone) must not fail requests: they pass, unlimited, until it is back.
    passOnStoreError: true,
    validate: { ip: false, keyGeneratorIpFallback: false },
    handler: (_req, res, _next, options) => {
      const retryAfter = Number(res.getHeader('Retry-After')) || Math.ceil(options.windowMs / 1000);
      sendError(
        res,
        new OrcheError(429, 'client_rate_limited', `Too many requests from this client: the limit is ${config.clientRpm} per minute`, {
          retry_after_ms: retryAfter * 1000,
        }, { 'Retry-After': String(retryAfter) }),
      );
    },
  });
}
