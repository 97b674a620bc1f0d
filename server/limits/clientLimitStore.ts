import { createHash } from 'node:crypto';
import Redis from 'ioredis';
import { RedisStore } from 'rate-limit-redis';

/** How long a command waits for the connection to open (at start, or while it reconnects). */
export const READY_WAIT_MS = 2000;

export interface ClientLimitRedis {
  store: RedisStore;
  disconnect(): void;
}

/**
 * Resolves when the connection is ready. Only the first connection is waited for (up to `ms`): once
 * it has opened or failed, a command on a connection that is down fails at once, so an outage lets
 * requests pass without delaying each of them.
 */
export function readiness(redis: Redis, ms: number): () => Promise<void> {
  let starting = true;
  const settle = () => (starting = false);
  redis.once('ready', settle);
  redis.once('close', settle);
  return () => {
    if (redis.status === 'ready') return Promise.resolve();
    if (!starting) return Promise.reject(new Error('client-limit Redis is not connected'));
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        redis.off('ready', done);
        redis.off('close', done);
        if (redis.status === 'ready') resolve();
        else reject(new Error('client-limit Redis is not connected'));
      };
      const timer = setTimeout(done, ms);
      redis.once('ready', done);
      redis.once('close', done);
    });
  };
}

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
export function clientLimitRedis(url: string, prefix: string): ClientLimitRedis {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: READY_WAIT_MS });
  redis.on('error', () => undefined); // an outage lets requests pass (passOnStoreError); the state store reports health
  const ready = readiness(redis, READY_WAIT_MS);
  const send = async (command: string, ...args: string[]): Promise<unknown> => {
    await ready();
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
