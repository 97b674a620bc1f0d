import cors from 'cors';
import type { RequestHandler } from 'express';

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
  // What cors does for no origin, without its calls per request.
  if (origins.length === 0) return (_req, _res, next) => next();
  const any = origins.includes('*');
  return cors({
    origin: any ? '*' : origins.length ? origins : false,
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-Request-Id'],
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'RateLimit', 'RateLimit-Policy', 'X-Orche-Provider', 'X-Orche-Key-Id', 'X-Orche-Attempts'],
    maxAge: 600,
  });
}
