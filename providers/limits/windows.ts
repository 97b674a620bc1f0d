/**
 * The windows limits count in, written once: OpenRouter counts per whole clock minute and per UTC
 * day; key limits reset daily, weekly (Monday) or monthly, at 00:00 UTC. Budgets, learned limits and
 * end users count in these windows; the Lua scripts get the same rules written in (`LUA_WINDOWS`).
 */

export const SECOND_MS = 1_000;
export const MINUTE_MS = 60 * SECOND_MS;
export const HOUR_MS = 60 * MINUTE_MS;
/** A UTC day: JavaScript's clock has no leap seconds, so every UTC day is this long. */
export const DAY_MS = 24 * HOUR_MS;

/** The clock's whole minute that holds `now`, as an index. */
export function minuteWindow(now: number): number {
  return Math.floor(now / MINUTE_MS);
}

/** The UTC day that holds `now`, as an index. */
export function dayWindow(now: number): number {
  return Math.floor(now / DAY_MS);
}

export function nextMinute(now: number): number {
  return (minuteWindow(now) + 1) * MINUTE_MS;
}

export function nextUtcMidnight(now: number): number {
  return (dayWindow(now) + 1) * DAY_MS;
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

/** The same minute and UTC day in a Lua script: `now` is the script's clock. */
export const LUA_WINDOWS = `
local MINUTE, DAY = ${MINUTE_MS}, ${DAY_MS}
local function minuteWindow(t) return math.floor(t / MINUTE) end
local function dayWindow(t) return math.floor(t / DAY) end
local function nextMinute(t) return (minuteWindow(t) + 1) * MINUTE end
local function nextUtcMidnight(t) return (dayWindow(t) + 1) * DAY end
`;

/** "… resets 2025-08-04T00:00:00Z" / "resets at <date>" / "resets on <date>" in a message: that date, if it parses and is ahead. */
export function resetsInMessage(message: string, now: number): number | undefined {
  const m = /\bresets?\s+(?:at\s+|on\s+)?(.+?)(?:\.(?:\s|$)|[;)\n]|$)/i.exec(message);
  if (!m) return undefined;
  const t = Date.parse(m[1].trim());
  return Number.isNaN(t) || t <= now ? undefined : t;
}
