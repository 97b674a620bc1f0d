import { createHash } from 'node:crypto';
import { RedisStore } from 'rate-limit-redis';
import type { SharedRedis } from '../../providers/store/redisConnection';

/**
 * The per-client limiter's counts in Redis, shared by every instance.
 *
 * rate-limit-redis loads its Lua scripts once, when the limiter is built, and keeps the promise: a
 * load made before the connection is open (the offline queue is off, so it fails at once) used to
 * fail every later count, and `passOnStoreError` then let every request through.
 * Two things make that impossible: commands wait for the first connection (briefly), and SCRIPT LOAD
 * never fails: when Redis cannot answer it, its reply — the script's SHA1 — is computed here, and
 * the first EVALSHA's NOSCRIPT makes the library load the script again on a live connection.
 */
export function clientLimitRedis({ redis, ready }: SharedRedis, prefix: string): RedisStore {
  const send = async (command: string, ...args: string[]): Promise<unknown> => {
    await ready();
    return redis.call(command, ...args);
  };
  return new RedisStore({
    prefix,
    sendCommand: async (command: string, ...args: string[]) => {
      if (command.toUpperCase() === 'SCRIPT' && args[0]?.toUpperCase() === 'LOAD') {
        try {
          return (await send(command, ...args)) as string;
        } catch {
          return createHash('sha1').update(args[1]).digest('hex');
        }
      }
      return send(command, ...args) as Promise<number>;
    },
  });
}
