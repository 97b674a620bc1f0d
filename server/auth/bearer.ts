import { createHash, timingSafeEqual } from 'node:crypto';
import { OrcheError } from '../../providers/errors';

const BEARER = /^Bearer\s+(\S+)\s*$/i;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The token of an `Authorization: Bearer <token>` header, if it is one. */
export function bearerToken(header: string | undefined): string | undefined {
  return header ? BEARER.exec(header)?.[1] : undefined;
}

/** Constant-time check of a Bearer token against a set of allowed ones. */
export function bearerMatches(header: string | undefined, allowed: readonly string[]): 'missing' | 'wrong' | 'ok' {
  const token = bearerToken(header);
  if (token === undefined) return 'missing';
  const given = digest(token);
  let ok = false;
  for (const t of allowed) ok = timingSafeEqual(given, digest(t)) || ok;
  return ok ? 'ok' : 'wrong';
}

/**
 * The Bearer gate of a route: 401 without a token, 403 for one not in `allowed`; the token when it
 * passes. `says` names, for the client, what the route needs and which token was wrong.
 */
export function bearerGate(allowed: readonly string[], says: { missing: string; wrong: string }): (header: string | undefined) => string {
  return (header) => {
    const verdict = bearerMatches(header, allowed);
    if (verdict === 'missing') throw new OrcheError(401, 'unauthorized', says.missing);
    if (verdict === 'wrong') throw new OrcheError(403, 'forbidden', says.wrong);
    return bearerToken(header)!;
  };
}
