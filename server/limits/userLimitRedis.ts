/**
 * ORCHE_USER_RPM / ORCHE_USER_RPD shared by every instance on one Redis, as the per-client limit is
 * (docs/design.md#what-is-shared-through-redis-and-what-is-per-instance): one atomic script counts an end user's request in the clock minute and the
 * UTC day — EndUsers' windows (server/limits/endUsers.ts) — or says how long until it would be allowed.
 * A refused request is not counted. While Redis cannot answer, each instance's own counts decide.
 *
 * Layout under the prefix P: P m:<minute>:<user hash>, P d:<day>:<user hash>, each expiring a minute
 * after its window. The user is hashed: names are often e-mail addresses, and Redis needs none.
 */
import { createHash } from 'node:crypto';
import type { SharedRedis } from '../../providers/store/redisConnection';
import { LUA_WINDOWS } from '../../providers/limits/windows';

/** ARGV: P, now, rpm (-1: none), rpd (-1: none), user hash. Returns the wait in ms, or 0 (counted). */
const ADMIT = `
local P, now = ARGV[1], tonumber(ARGV[2])
local rpm, rpd = tonumber(ARGV[3]), tonumber(ARGV[4])
${LUA_WINDOWS}
local km = P .. 'm:' .. string.format('%d', minuteWindow(now)) .. ':' .. ARGV[5]
local kd = P .. 'd:' .. string.format('%d', dayWindow(now)) .. ':' .. ARGV[5]
if rpd >= 0 and tonumber(redis.call('GET', kd) or '0') >= rpd then return nextUtcMidnight(now) - now end
if rpm >= 0 and tonumber(redis.call('GET', km) or '0') >= rpm then return nextMinute(now) - now end
redis.call('INCR', km)
redis.call('PEXPIRE', km, string.format('%d', nextMinute(now) - now + MINUTE))
redis.call('INCR', kd)
redis.call('PEXPIRE', kd, string.format('%d', nextUtcMidnight(now) - now + MINUTE))
return 0
`;

/** The shared decision for one request of `key` at `now`: wait in ms (0: counted), undefined when Redis cannot say. */
export type SharedUserLimit = (key: string, now: number) => Promise<number | undefined>;

export function userLimitRedis({ redis, ready }: SharedRedis, prefix: string, limits: { rpm?: number; rpd?: number }): SharedUserLimit {
  return async (key, now) => {
    try {
      await ready();
      const user = createHash('sha256').update(key).digest('hex').slice(0, 32);
      const wait = await redis.eval(ADMIT, 0, prefix, Math.floor(now), limits.rpm ?? -1, limits.rpd ?? -1, user);
      return Number(wait);
    } catch {
      return undefined;
    }
  };
}
