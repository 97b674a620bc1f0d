/**
 * What fair, paced release shares (docs/design.md#pacing-and-fairness): per provider, the pacing of the current
 * window (providers/dispatch/pacing.ts decides it; the store keeps it and lets one instance at a
 * time move it on) and how many requests wait on each instance; per provider and window, how many
 * calls each client, and each end user within it, was served. In memory for one instance; in
 * Redis, beside the window's counts, for many. Kept apart from the key state (its own names and
 * scripts) so that the rules of the key stores stay as they are.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import type { PaceState } from '../dispatch/pacing';
import { MINUTE_MS } from '../limits/windows';
import { REDIS_KIND } from './names';

export interface PaceRead {
  state: PaceState | undefined;
  /** What the state was, to move it on only if no other instance did meanwhile (`claimPace`). */
  version: string;
  /** Requests waiting for the provider on every instance. */
  waiting: number;
  /** New requests per millisecond lately, on every instance. */
  arrivalRate: number;
  /**
   * The fewest calls served in this window to a client waiting on another instance (Infinity: none
   * reported), so that a release goes to the least served client wherever it waits.
   */
  othersLeast: number;
}

export interface FairState {
  /**
   * Records this instance's waiting requests, arrival rate and `least` (the fewest calls served in
   * this window to a client waiting here; Infinity for none) for the provider; the pacing state and the totals.
   */
  paceState(provider: string, waiting: number, now: number, arrivalRate: number, least?: number): Promise<PaceRead>;
  /** Moves the pacing on to `next` if it is still at `version`; false when another instance moved it first. */
  claimPace(provider: string, version: string, next: PaceState, now: number): Promise<boolean>;
  /** One call served for the client (and its end user; '' for none) in the window. */
  countServed(provider: string, window: number, windowMs: number, client: string, user: string): Promise<void>;
  /** The served counts of these clients and (client, user) pairs in the window, in order. */
  served(provider: string, window: number, clients: readonly string[], users: ReadonlyArray<readonly [string, string]>): Promise<{ clients: number[]; users: number[] }>;
}

const encode = (s: PaceState) => `${s.windowEnd}|${s.released}|${s.nextAt}`;
function decode(v: string): PaceState | undefined {
  const [windowEnd, released, nextAt] = v.split('|').map(Number);
  return v !== '' && [windowEnd, released, nextAt].every(Number.isFinite) ? { windowEnd, released, nextAt } : undefined;
}
const userKey = (client: string, user: string) => `${client}\u0000${user}`;

/** One instance: plain maps; windows other than the current and the previous one are dropped. */
export class MemoryFairState implements FairState {
  private readonly pace = new Map<string, string>();
  /** Per provider and window, the served counts (clients, and `userKey`s). */
  private readonly counts = new Map<string, Map<number, Map<string, number>>>();

  async paceState(provider: string, waiting: number, _now: number, arrivalRate: number): Promise<PaceRead> {
    const version = this.pace.get(provider) ?? '';
    return { state: decode(version), version, waiting, arrivalRate, othersLeast: Infinity };
  }

  async claimPace(provider: string, version: string, next: PaceState): Promise<boolean> {
    if ((this.pace.get(provider) ?? '') !== version) return false;
    this.pace.set(provider, encode(next));
    return true;
  }

  async countServed(provider: string, window: number, _windowMs: number, client: string, user: string): Promise<void> {
    this.countServedSync(provider, window, client, user);
  }

  countServedSync(provider: string, window: number, client: string, user: string): void {
    let windows = this.counts.get(provider);
    if (!windows) this.counts.set(provider, (windows = new Map()));
    let c = windows.get(window);
    if (!c) {
      windows.set(window, (c = new Map()));
      // Only this window and the one before are kept, as Redis expires them.
      for (const w of windows.keys()) if (w < window - 1) windows.delete(w);
    }
    c.set(client, (c.get(client) ?? 0) + 1);
    c.set(userKey(client, user), (c.get(userKey(client, user)) ?? 0) + 1);
  }

  async served(provider: string, window: number, clients: readonly string[], users: ReadonlyArray<readonly [string, string]>): Promise<{ clients: number[]; users: number[] }> {
    const c = this.counts.get(provider)?.get(window);
    return { clients: clients.map((x) => c?.get(x) ?? 0), users: users.map(([x, u]) => c?.get(userKey(x, u)) ?? 0) };
  }
}

/** An instance's waiting count older than this no longer counts (an instance that went away). */
export const WAITING_FRESH_MS = MINUTE_MS;

/**
 * Layout under the prefix P: `P pz:<provider>` hash — `s` the pacing state, `w:<instance>`
 * "waiting:rate:least@at" (least -1: nobody waiting there); `P sv:<provider>:<window>` hash — `c:<client hash>`, `u:<client+user hash>`
 * served counts, expiring two windows on. Clients and end users are stored as hashes, never in clear.
 */
const PACE_STATE = `
local P, now = ARGV[1], tonumber(ARGV[2])
local key = P .. '${REDIS_KIND.pace}' .. ARGV[3]
local mine = 'w:' .. ARGV[4]
redis.call('HSET', key, mine, ARGV[5] .. ':' .. ARGV[6] .. ':' .. ARGV[7] .. '@' .. ARGV[2])
redis.call('PEXPIRE', key, ${WAITING_FRESH_MS} * 2)
local h = redis.call('HGETALL', key)
local total, rate, state, least = 0, 0, '', -1
for i = 1, #h, 2 do
  if h[i] == 's' then state = h[i + 1]
  else
    -- "waiting:rate@at" is what an instance before the least count wrote.
    local n, r, l, at = string.match(h[i + 1], '^(%d+):(%d+):(%-?%d+)@(%d+)$')
    if not n then n, r, at = string.match(h[i + 1], '^(%d+):(%d+)@(%d+)$') end
    if n and now - tonumber(at) < ${WAITING_FRESH_MS} then
      total = total + tonumber(n)
      rate = rate + tonumber(r)
      l = tonumber(l or '-1')
      if h[i] ~= mine and tonumber(n) > 0 and l >= 0 and (least < 0 or l < least) then least = l end
    else redis.call('HDEL', key, h[i]) end
  end
end
return {state, total, rate, least}
`;

const CLAIM_PACE = `
local key = ARGV[1] .. '${REDIS_KIND.pace}' .. ARGV[2]
if (redis.call('HGET', key, 's') or '') ~= ARGV[3] then return 0 end
redis.call('HSET', key, 's', ARGV[4])
redis.call('PEXPIRE', key, ${WAITING_FRESH_MS} * 2)
return 1
`;

/** One call served: both counts and the expiry in one command (a MULTI costs five). */
const COUNT_SERVED = `
redis.call('HINCRBY', ARGV[1], ARGV[2], 1)
redis.call('HINCRBY', ARGV[1], ARGV[3], 1)
redis.call('PEXPIRE', ARGV[1], ARGV[4])
return 1
`;

interface FairScripts {
  orchePaceState(...args: Array<string | number>): Promise<[string, number, number, number]>;
  orcheClaimPace(...args: Array<string | number>): Promise<number>;
  orcheCountServed(...args: Array<string | number>): Promise<number>;
}

const hashOf = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 20);

/**
 * Shared through Redis. When Redis does not answer, the instance goes on alone with its local
 * state (the key store reports the outage); fairness is then per instance until Redis returns.
 */
export class RedisFairState implements FairState {
  private readonly redis: Redis & FairScripts;
  private readonly local = new MemoryFairState();

  constructor(redis: Redis, private readonly prefix: string, private readonly instance: string) {
    redis.defineCommand('orchePaceState', { numberOfKeys: 0, lua: PACE_STATE });
    redis.defineCommand('orcheClaimPace', { numberOfKeys: 0, lua: CLAIM_PACE });
    redis.defineCommand('orcheCountServed', { numberOfKeys: 0, lua: COUNT_SERVED });
    this.redis = redis as Redis & FairScripts;
  }

  async paceState(provider: string, waiting: number, now: number, arrivalRate: number, least = Infinity): Promise<PaceRead> {
    try {
      // The rate travels as arrivals per 1000 s, a whole number for Lua's pattern; no least as -1.
      const mine = Number.isFinite(least) ? Math.max(0, Math.floor(least)) : -1;
      const [version, total, rate, others] = await this.redis.orchePaceState(this.prefix, Math.floor(now), provider, this.instance, Math.max(0, Math.floor(waiting)), Math.round(arrivalRate * 1e6), mine);
      return { state: decode(version), version, waiting: Number(total), arrivalRate: Number(rate) / 1e6, othersLeast: Number(others) < 0 ? Infinity : Number(others) };
    } catch {
      return this.local.paceState(provider, waiting, now, arrivalRate);
    }
  }

  async claimPace(provider: string, version: string, next: PaceState, now: number): Promise<boolean> {
    try {
      return (await this.redis.orcheClaimPace(this.prefix, provider, version, encode(next))) === 1;
    } catch {
      return this.local.claimPace(provider, version, next);
    }
  }

  private servedKey(provider: string, window: number): string {
    return `${this.prefix}${REDIS_KIND.served}${provider}:${window}`;
  }

  async countServed(provider: string, window: number, windowMs: number, client: string, user: string): Promise<void> {
    this.local.countServedSync(provider, window, client, user);
    const key = this.servedKey(provider, window);
    try {
      await this.redis.orcheCountServed(key, `c:${hashOf(client)}`, `u:${hashOf(userKey(client, user))}`, Math.ceil(2 * windowMs));
    } catch {
      // Counted locally: fairness per instance until Redis returns.
    }
  }

  async served(provider: string, window: number, clients: readonly string[], users: ReadonlyArray<readonly [string, string]>): Promise<{ clients: number[]; users: number[] }> {
    const fields = [...clients.map((c) => `c:${hashOf(c)}`), ...users.map(([c, u]) => `u:${hashOf(userKey(c, u))}`)];
    if (fields.length === 0) return { clients: [], users: [] };
    try {
      const got = (await this.redis.hmget(this.servedKey(provider, window), ...fields)).map((v) => Number(v ?? 0));
      return { clients: got.slice(0, clients.length), users: got.slice(clients.length) };
    } catch {
      return this.local.served(provider, window, clients, users);
    }
  }
}
