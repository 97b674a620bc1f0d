import { createHash } from 'node:crypto';
import type { Request } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { bearerMatches } from './middleware';

/**
 * Who a client is, for every per-client limit (requests per minute, concurrent streams, fair
 * sharing): a configured client token (hashed, never kept in clear), else the client's address.
 * A Bearer token orche was not configured with is ignored, so inventing a new token per request
 * never opens a new bucket (SPEC §7). The address is `req.ip`, which honours ORCHE_TRUST_PROXY
 * (Express "trust proxy"): X-Forwarded-For counts only as far as that setting trusts the hops.
 * IPv6 addresses are grouped by their /56, as one subscriber usually holds a whole prefix.
 */
export function clientIdentity(req: Request, clientTokens: readonly string[]): string {
  if (clientTokens.length > 0) {
    const authorization = req.get('authorization');
    if (bearerMatches(authorization, clientTokens as string[]) === 'ok') {
      const token = /^Bearer\s+(\S+)/i.exec(authorization!)![1];
      return `t:${createHash('sha256').update(token).digest('hex').slice(0, 24)}`;
    }
  }
  return `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`;
}
