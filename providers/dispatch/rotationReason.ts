import type { Outcome } from '../limits/rateLimit';

/**
 * Why the rotation left a request's key, kept from one call to the next pick: when that pick takes
 * another key, the rotation is announced with this reason (the rotation history, docs/design.md). Pure.
 */
export interface LeftKey {
  keyId: string;
  reason: string;
}

export interface Rotation {
  from: string;
  to: string;
  reason: string;
}

/** A pick took `keyId`: the rotation to announce, when the request left another key for it. */
export function rotationTo(left: LeftKey | null, keyId: string): Rotation | null {
  return left && left.keyId !== keyId ? { from: left.keyId, to: keyId, reason: left.reason } : null;
}

/** A call with `keyId` ended: an answer other than a success is why the rotation leaves the key. */
export function leftAfterCall(left: LeftKey | null, keyId: string, outcome: Outcome): LeftKey | null {
  return outcome.kind === 'success' ? left : { keyId, reason: outcome.reason };
}

/**
 * The request falls back to another provider. Right after a call (`keyId`, the key it used) the
 * fallback names why the rotation left the key; a fallback without a call (no key configured or
 * usable) leaves the reason as it was.
 */
export function leftForFallBack(left: LeftKey | null, keyId: string | null, reason: string): LeftKey | null {
  return keyId !== null && left ? { keyId, reason } : left;
}
