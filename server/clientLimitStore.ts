import { createHash } from 'node:crypto';
import Redis from 'ioredis';
import { RedisStore } from 'rate-limit-redis';

/** How long a command waits for the connection to open (at start, or while it reconnects). */
const READY_WAIT_MS = 2000;

export interface ClientLimitRedis {
  store: RedisStore;
  disconnect(): void;
}

/** Resolves when the connection is ready, rejects when it is not within `ms`. */
function whenReady(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const timer = setTimeout(() => done(new Error('client-limit Redis is not connected')), ms);
    redis.once('ready', onReady);
  });
}

/**
 * The per-client limiter's counts in Redis, shared by every instance.
 *
 * rate-limit-redis loads its Lua scripts once, when the limiter is built, and keeps the promise: a
 * load made before the connection is open (the offline queue is off, so it fails at once) used to
 * fail every later count, and `passOnStoreError` then let every request through (issue 12, hole 1).
 * Two things make that impossible: every command waits for the connection (briefly), and SCRIPT LOAD
 * never fails: when Redis cannot answer it, its reply — the script's SHA1 — is computed here, and
 * the first EVALSHA's NOSCRIPT makes the library load the script again on a live connection.
 */
export function clientLimitRedis(url: string, prefix: string): ClientLimitRedis {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: READY_WAIT_MS });
  redis.on('error', () => undefined); // an outage lets requests pass (passOnStoreError); the state store reports health
  const send = async (command: string, ...args: string[]): Promise<unknown> => {
    await whenReady(redis, READY_WAIT_MS);
    return redis.call(command, ...args);
  };
  const store = new RedisStore({
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
  return { store, disconnect: () => redis.disconnect() };
}
