import type { Request, RequestHandler } from 'express';
import { MemoryStore, rateLimit, type Store } from 'express-rate-limit';
import type { Config } from '../../config';
import { OrcheError, retryAfterSeconds } from '../../providers/errors';
import { clientIdentity } from '../auth/clientIdentity';
import type { Logger } from '../observe/logger';
import { sendError } from '../http/errors';
import { MINUTE_MS } from '../../providers/limits/windows';

/** The limiter's store errors as one warn line a minute (not one per request, not on stderr). */
function outageLog(log: Logger | undefined): { error: (e: unknown, m?: string) => void; warn: (e: unknown, m?: string) => void } {
  let last = -Infinity;
  const say = (e: unknown) => {
    if (Date.now() - last < WINDOW_MS) return;
    last = Date.now();
    log?.warn('client limit store unavailable: requests pass without per-client limits until it is back', { error: e instanceof Error ? e.message : String(e) });
  };
  return { error: say, warn: say };
}

function clientRateLimited(config: Config, retryAfterS: number): OrcheError {
  return new OrcheError(429, 'client_rate_limited', `Too many requests from this client: the limit is ${config.clientRpm} per minute`, {
    retry_after_ms: retryAfterS * 1000,
  }, { 'Retry-After': String(retryAfterS) });
}

const WINDOW_MS = MINUTE_MS;

export interface ClientLimiter {
  /** Counts one request per call on the chat routes (before the body is read). */
  middleware: RequestHandler;
  /**
   * From the route, once it knows how many upstream calls it makes (a fan-out's legs): charges the
   * calls beyond the one already counted; throws the 429 when that passes the limit.
   */
  chargeMore(req: Request, extra: number): Promise<void>;
}

/**
 * ORCHE_CLIENT_RPM requests per minute per client identity on the chat routes, with the IETF
 * `RateLimit` headers (draft-8) and a 429 in orche's error shape. `store` shares counts across
 * instances (Redis); each fan-out leg counts as one request (docs/design.md#the-outcome-table).
 */
export function clientLimiter(config: Config, sharedStore?: Store, log?: Logger): ClientLimiter {
  const pass: RequestHandler = (_req, _res, next) => next();
  if (!config.clientRpm) return { middleware: pass, chargeMore: async () => undefined };
  const store = sharedStore ?? new MemoryStore();
  const key = (req: Request) => clientIdentity(req, config.clientTokens);
  const middleware = rateLimit({
    windowMs: WINDOW_MS,
    limit: config.clientRpm,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    keyGenerator: key,
    store,
    // A store outage (Redis gone) must not fail requests: they pass, unlimited, until it is back.
    passOnStoreError: true,
    logger: outageLog(log),
    validate: { ip: false, keyGeneratorIpFallback: false },
    handler: (_req, res, _next, options) => {
      sendError(res, clientRateLimited(config, Number(res.getHeader('Retry-After')) || retryAfterSeconds(options.windowMs)));
    },
  });
  const chargeMore = async (req: Request, extra: number): Promise<void> => {
    let hits: { totalHits: number; resetTime?: Date } | undefined;
    try {
      for (let i = 0; i < extra; i++) hits = await store.increment(key(req));
    } catch {
      return; // as above: an outage lets the request pass
    }
    if (hits && hits.totalHits > config.clientRpm!) {
      const retryAfter = retryAfterSeconds((hits.resetTime?.getTime() ?? Date.now() + WINDOW_MS) - Date.now());
      throw clientRateLimited(config, retryAfter);
    }
  };
  return { middleware, chargeMore };
}
