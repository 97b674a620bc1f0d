/** Per-key request counters: what /api/key-status shows and a snapshot file keeps. */

export interface KeyStats {
  requests: number;
  successes: number;
  rateLimited: number;
  failures: number;
  latencyTotalMs: number;
  tokens: number;
  lastUsedAt: number | null;
  limit: number | null;
  remaining: number | null;
  resetAt: number | null;
}

export function emptyStats(): KeyStats {
  return { requests: 0, successes: 0, rateLimited: 0, failures: 0, latencyTotalMs: 0, tokens: 0, lastUsedAt: null, limit: null, remaining: null, resetAt: null };
}

/** Saved stats back into shape: numbers stay, anything else falls back to empty. */
export function statsFrom(data: unknown): KeyStats {
  const out = emptyStats();
  if (typeof data !== 'object' || data === null) return out;
  const d = data as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  for (const k of ['requests', 'successes', 'rateLimited', 'failures', 'latencyTotalMs', 'tokens'] as const) out[k] = num(d[k]) ?? 0;
  for (const k of ['lastUsedAt', 'limit', 'remaining', 'resetAt'] as const) out[k] = num(d[k]);
  return out;
}

export type SavedStats = Record<string, { totals: KeyStats; keys: Record<string, KeyStats> }>;

/** `usage.total_tokens` of an answer, or 0. */
export function totalTokens(usage: unknown): number {
  const total = (usage as { total_tokens?: unknown } | null | undefined)?.total_tokens;
  return typeof total === 'number' && Number.isFinite(total) && total > 0 ? total : 0;
}

/** `usage.cost` of an answer: what OpenRouter charged for it, in USD (its credits), or 0 when not sent. */
export function costOf(usage: unknown): number {
  const cost = (usage as { cost?: unknown } | null | undefined)?.cost;
  return typeof cost === 'number' && Number.isFinite(cost) && cost > 0 ? cost : 0;
}
