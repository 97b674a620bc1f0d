import { createHash } from 'node:crypto';
import type { Request } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { bearerMatches, bearerToken } from './bearer';

/**
 * Who a client is, for every per-client limit (requests per minute, concurrent streams, fair
 * sharing): a configured client token (hashed, never kept in clear), else the client's address.
 * A Bearer token orche was not configured with is ignored, so inventing a new token per request
 * never opens a new bucket (docs/design.md#client-identity-and-per-client-limits). The address is `req.ip`, which honours ORCHE_TRUST_PROXY
 * (Express "trust proxy"): X-Forwarded-For counts only as far as that setting trusts the hops.
 * IPv6 addresses are grouped by their /56, as one subscriber usually holds a whole prefix.
 */
export function identityOf(req: Request, configuredToken: string | undefined): string {
  return configuredToken !== undefined ? tokenIdentity(configuredToken) : addressIdentity(req);
}

/** A configured client token's identity: its hash, never the token. */
export function tokenIdentity(token: string): string {
  return `t:${createHash('sha256').update(token).digest('hex').slice(0, 24)}`;
}

/** The identity of the client's address, as ORCHE_TRUST_PROXY reads it (`req.ip`). */
export function addressIdentity(req: Request): string {
  return `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`;
}

/**
 * The request's client identity: the one clientAuth settled (res.locals.clientId, on every chat
 * route), else worked out here (a caller outside those routes).
 */
export function clientIdentity(req: Request, clientTokens: readonly string[]): string {
  const settled: unknown = req.res?.locals.clientId;
  if (typeof settled === 'string') return settled;
  const authorization = req.get('authorization');
  const configured = clientTokens.length > 0 && bearerMatches(authorization, clientTokens) === 'ok';
  return identityOf(req, configured ? bearerToken(authorization) : undefined);
}
