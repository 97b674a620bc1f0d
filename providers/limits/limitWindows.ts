/**
 * When a limit's window ends, for answers that name the window but not its reset: OpenRouter counts
 * per whole clock minute and per UTC day; key limits reset daily, weekly (Monday) or monthly, at 00:00 UTC.
 */

const MINUTE = 60_000;

export function nextMinute(now: number): number {
  return (Math.floor(now / MINUTE) + 1) * MINUTE;
}

export function nextUtcMidnight(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

/** OpenRouter's key-limit weeks run Monday to Sunday, UTC. */
export function nextUtcMonday(now: number): number {
  const d = new Date(now);
  const daysToMonday = ((8 - d.getUTCDay()) % 7) || 7;
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + daysToMonday);
}

export function nextUtcMonth(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** "… resets 2025-08-04T00:00:00Z" / "resets at <date>" / "resets on <date>" in a message: that date, if it parses and is ahead. */
export function resetsInMessage(message: string, now: number): number | undefined {
  const m = /\bresets?\s+(?:at\s+|on\s+)?(.+?)(?:\.(?:\s|$)|[;)\n]|$)/i.exec(message);
  if (!m) return undefined;
  const t = Date.parse(m[1].trim());
  return Number.isNaN(t) || t <= now ? undefined : t;
}
