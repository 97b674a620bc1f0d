/**
 * End users: a frontend that serves many people names each one with OpenAI's `user`
 * field or an `X-Orche-User` header. Then fair sharing, ORCHE_USER_RPM / ORCHE_USER_RPD and
 * /api/usage work per end user too. The users tracked are bounded (least recently seen dropped
 * first), so naming a new user per request cannot grow memory without end. Users are kept, shown
 * and logged by a hash of their name only (endUserHash), each to the client that named it. The tracked users and
 * their counts for /api/usage are per instance; with Redis the limits are decided on counts shared
 * by every instance (server/limits/userLimitRedis.ts), and on this instance's own while Redis is away.
 */
import { createHash } from 'node:crypto';
import type { NextFunction, RequestHandler, Response } from 'express';
import type { Config } from '../../config';
import { OrcheError, retryHeaders } from '../../providers/errors';
import { fairKey, type RequestClient, splitFairKey } from '../../providers/dispatch/requestClient';
import { clientIdentity } from '../auth/clientIdentity';
import type { SharedUserLimit } from './userLimitRedis';
import { dayWindow, minuteWindow, nextMinute, nextUtcMidnight } from '../../providers/limits/windows';

/** Users tracked at once; the least recently seen is forgotten first. */
export const MAX_TRACKED_USERS = 10_000;
/** Longer names are cut: a name is an identifier, not a payload. */
const MAX_USER_LENGTH = 128;

export interface UserCounts {
  minute: number;
  minuteCount: number;
  day: number;
  dayCount: number;
  successes: number;
  failures: number;
  /** Refused by ORCHE_USER_RPM / ORCHE_USER_RPD. */
  rateLimited: number;
  lastSeenAt: number;
}

/** The end user a request names: the `X-Orche-User` header, else the body's `user` string. */
export function endUserOf(header: string | undefined, body: unknown): string | undefined {
  const fromBody = body && typeof body === 'object' ? (body as { user?: unknown }).user : undefined;
  const raw = header !== undefined && header.trim() !== '' ? header : typeof fromBody === 'string' ? fromBody : undefined;
  const name = raw?.trim();
  return name ? name.slice(0, MAX_USER_LENGTH) : undefined;
}

/**
 * How orche names an end user everywhere past the request (docs/design.md#end-user-privacy): the first 12 hex digits of the
 * SHA-256 of the name as sent. Names are often e-mail addresses; none is kept, shown or logged in
 * clear. A frontend can compute the same hash to find its users in /api/usage.
 */
export function endUserHash(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 12);
}

/** Per-user request counts in the current minute and UTC day, for limits and /api/usage. */
export class EndUsers {
  private readonly users = new Map<string, UserCounts>();

  constructor(
    private readonly limits: { rpm?: number; rpd?: number },
    private readonly max = MAX_TRACKED_USERS,
  ) {}

  /**
   * Counts one request of `key`; the wait in ms until it would be allowed, or 0 (counted) when it is.
   * `shared`: the decision of the counts shared through Redis (server/limits/userLimitRedis.ts), which
   * replaces this instance's own; the request is still counted here for /api/usage.
   */
  admit(key: string, now: number, shared?: number): number {
    const minute = minuteWindow(now);
    const day = dayWindow(now);
    let u = this.users.get(key);
    if (u) this.users.delete(key); // re-inserted last: most recently seen
    else u = { minute, minuteCount: 0, day, dayCount: 0, successes: 0, failures: 0, rateLimited: 0, lastSeenAt: now };
    this.users.set(key, u);
    if (this.users.size > this.max) this.users.delete(this.users.keys().next().value!);
    if (u.minute !== minute) Object.assign(u, { minute, minuteCount: 0 });
    if (u.day !== day) Object.assign(u, { day, dayCount: 0 });
    u.lastSeenAt = now;
    let own = 0;
    if (this.limits.rpd !== undefined && u.dayCount >= this.limits.rpd) own = nextUtcMidnight(now) - now;
    else if (this.limits.rpm !== undefined && u.minuteCount >= this.limits.rpm) own = nextMinute(now) - now;
    const wait = shared ?? own;
    if (wait > 0) {
      u.rateLimited++;
      return wait;
    }
    u.minuteCount++;
    u.dayCount++;
    return 0;
  }

  /** A request of `key` ended: success or not (for /api/usage). */
  settle(key: string, ok: boolean): void {
    const u = this.users.get(key);
    if (!u) return;
    if (ok) u.successes++;
    else u.failures++;
  }

  get size(): number {
    return this.users.size;
  }

  /**
   * The tracked users whose client `canSee` accepts, most recently seen first, with counts for the
   * current minute and day; each user by its hash, its client not named; `extra` adds fields by the user's tracked key.
   */
  view(now: number, canSee: (client: string) => boolean, extra?: (key: string) => Record<string, unknown>): Array<{ user: string; calls_this_minute: number; calls_today: number; successes: number; failures: number; rate_limited: number; last_seen_at: string; [more: string]: unknown }> {
    const minute = minuteWindow(now);
    const day = dayWindow(now);
    const seen = [...this.users.entries()].map(([key, u]) => ({ key, ...splitFairKey(key), u })).filter((e) => canSee(e.client));
    return seen.reverse().map(({ key, user, u }) => ({
      user,
      calls_this_minute: u.minute === minute ? u.minuteCount : 0,
      calls_today: u.day === day ? u.dayCount : 0,
      successes: u.successes,
      failures: u.failures,
      rate_limited: u.rateLimited,
      last_seen_at: new Date(u.lastSeenAt).toISOString(),
      ...extra?.(key),
    }));
  }
}

/**
 * On the chat routes, after the body is parsed: who the request is for (client identity, end user)
 * goes on `res.locals.fairKey` for the wait room, and the per-user limits apply.
 */
export function requestScope(config: Config, users: EndUsers, now: () => number, shared?: SharedUserLimit): RequestHandler {
  const admitted = (res: Response, next: NextFunction, key: string, at: number, sharedCount: number | undefined) => {
    const wait = users.admit(key, at, sharedCount);
    if (wait > 0) return next(new OrcheError(429, 'user_rate_limited', 'Too many requests for this end user', { retry_after_ms: wait }, retryHeaders(wait)));
    res.on('finish', () => users.settle(key, res.statusCode < 400));
    res.locals.fairKey = key;
    next();
  };
  // Synchronous unless the user's count is shared (Redis): most requests name no user and await nothing.
  return (req, res, next) => {
    const header = req.headers['x-orche-user'];
    const name = endUserOf(typeof header === 'string' ? header : undefined, req.body);
    // The name goes no further than here (it still goes upstream in the body, as the frontend sent it).
    const who: RequestClient = { client: clientIdentity(req, config.clientTokens), user: name === undefined ? undefined : endUserHash(name) };
    const key = fairKey(who);
    res.locals.endUser = who.user;
    if (who.user === undefined) {
      res.locals.fairKey = key;
      return next();
    }
    const at = now();
    if (!shared) return admitted(res, next, key, at, undefined);
    return shared(key, at).then((count) => admitted(res, next, key, at, count));
  };
}
