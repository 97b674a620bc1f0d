import { createHash } from 'node:crypto';

/** A key's public identity: a short fingerprint, the same on every instance, never reversible. */
export function keyId(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

/** At most the first 12 and last 3 characters (`sk-or-v1-f83…8a7`); less of a short key. */
export function keyPreview(key: string): string {
  const head = Math.min(12, Math.floor(key.length / 3));
  const tail = Math.min(3, Math.floor(key.length / 6));
  return `${key.slice(0, head)}…${tail > 0 ? key.slice(-tail) : ''}`;
}

/** OpenRouter's free variants end with `:free`; only they count against the per-account free limits. */
export function isFreeModel(model: string): boolean {
  return model.endsWith(':free');
}

/** The account of a key configured without one (`name:sk-or-…` declares it): its own. */
export function undeclaredAccount(keyId: string): string {
  return `key:${keyId}`;
}
