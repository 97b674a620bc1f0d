import { createHash, timingSafeEqual } from 'node:crypto';

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
