/**
 * The upstream's own words as a client may see them (an error message, a stream error's
 * metadata): bounded in size. They were masked where they entered (OpenRouterClient, mask.ts);
 * this only cuts them short.
 */

/** Relayed upstream messages (errors, stream error chunks) are cut to this many characters. */
export const MAX_RELAYED_CHARS = 500;

/** At most MAX_RELAYED_CHARS characters, with `…` where it was cut. */
export function capRelayed(text: string): string {
  return text.length <= MAX_RELAYED_CHARS ? text : `${text.slice(0, MAX_RELAYED_CHARS - 1)}…`;
}

/** Every string in a small JSON value (stream error `metadata`) capped as above; depth and width bounded. */
export function capRelayedValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return capRelayed(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= 4) return undefined;
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => capRelayedValue(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value).slice(0, 20)) out[k.slice(0, 64)] = capRelayedValue(v, depth + 1);
  return out;
}
