/** The bearer-token guards of the routes: admin, client and status, all through one bearerGate. */
import type { Request, RequestHandler } from 'express';
import type { Config } from '../../config';
import { OrcheError } from '../../providers/errors';
import { bearerGate } from './bearer';
import { addressIdentity, tokenIdentity } from './clientIdentity';

export function adminAuth(adminToken: string | undefined): RequestHandler {
  const gate = bearerGate(adminToken ? [adminToken] : [], { missing: 'This admin route needs Authorization: Bearer <ORCHE_ADMIN_TOKEN>', wrong: 'The admin token is not valid' });
  return (req, _res, next) => {
    if (!adminToken) {
      throw new OrcheError(403, 'admin_disabled', 'Admin routes are disabled: set ORCHE_ADMIN_TOKEN and send it as Authorization: Bearer <token>');
    }
    gate(req.get('authorization'));
    next();
  };
}

/**
 * The chat routes' gate: a configured client token (401 without one, 403 for a wrong one) when
 * ORCHE_CLIENT_TOKENS is set. It also settles who the client is, once (res.locals.clientId), for
 * every per-client limit after it: requests per minute, open streams, fair turns.
 */
export function clientAuth(tokens: string[], trustProxy: Config['trustProxy']): RequestHandler {
  const gate = bearerGate(tokens, { missing: 'This route needs Authorization: Bearer <client token>', wrong: 'The client token is not valid' });
  // Worked out once, not per request (issue 21): the identities of the configured tokens and,
  // when no proxy is trusted (the address is the connection's), of each connection's address.
  const byToken = new Map(tokens.map((t) => [t, tokenIdentity(t)]));
  const byConnection = trustProxy === false || trustProxy === 0 ? new WeakMap<object, string>() : undefined;
  const addressOf = (req: Request) => {
    if (!byConnection) return addressIdentity(req);
    let id = byConnection.get(req.socket);
    if (id === undefined) byConnection.set(req.socket, (id = addressIdentity(req)));
    return id;
  };
  return (req, res, next) => {
    if (tokens.length === 0) {
      res.locals.clientId = addressOf(req);
      return next();
    }
    const token = gate(req.get('authorization'));
    res.locals.clientId = byToken.get(token) ?? tokenIdentity(token);
    next();
  };
}

/** Routes that show key state; private with ORCHE_PROTECT_STATUS=true (liveness and readiness stay open). */
export const STATUS_PATHS = ['/status', '/api/key-status', '/api/models', '/api/rotations', '/api/usage', '/metrics'];

export function statusAuth(config: Config): RequestHandler {
  const tokens = [...config.clientTokens, ...(config.adminToken ? [config.adminToken] : [])];
  const gate = bearerGate(tokens, { missing: 'Status routes need Authorization: Bearer <client or admin token>', wrong: 'The token is not valid' });
  return (req, _res, next) => {
    if (!config.protectStatus) return next();
    if (tokens.length === 0) {
      throw new OrcheError(403, 'status_protected', 'Status routes are private (ORCHE_PROTECT_STATUS=true) but no ORCHE_CLIENT_TOKENS or ORCHE_ADMIN_TOKEN is set');
    }
    gate(req.get('authorization'));
    next();
  };
}
