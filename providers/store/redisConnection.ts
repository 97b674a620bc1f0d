/**
 * Every Redis connection orche opens is made here, with one set of options
 * (docs/design.md#what-is-shared-through-redis-and-what-is-per-instance): the state store's, and the
 * one the per-client and per-end-user limits share (`sharedRedis`). Whoever holds a bare connection
 * handles its `error` events.
 */
import Redis from 'ioredis';

/** How long a connection attempt, a command and a close may take by default. */
const REDIS_TIMEOUT_MS = 1000;

export interface RedisConnectionOptions {
  /** The connection's name in Redis's CLIENT LIST (operators see who holds which connection). */
  name?: string;
  /** Connect, command and close timeout (ms). */
  timeoutMs?: number;
  /** How long one connection attempt may take, when it differs from `timeoutMs`. */
  connectTimeoutMs?: number;
}

export function redisConnection(url: string, opts: RedisConnectionOptions = {}): Redis {
  const timeout = opts.timeoutMs ?? REDIS_TIMEOUT_MS;
  return new Redis(url, {
    // CLIENT SETNAME takes no spaces or newlines; a prefix may hold any character.
    ...(opts.name ? { connectionName: opts.name.replace(/[^\x21-\x7e]/g, '_') } : {}),
    connectTimeout: opts.connectTimeoutMs ?? timeout,
    commandTimeout: timeout,
    // ioredis waits this long on close for a socket that already died; do not hold shutdown.
    disconnectTimeout: timeout,
    // Fail at once while disconnected instead of queueing: local state (or passing) answers meanwhile.
    enableOfflineQueue: false,
    // Never re-sent by the client after a reconnect: a script that counts would count twice.
    maxRetriesPerRequest: 0,
    // Reconnect quickly and forever: rejoining within a second or so of Redis coming back.
    retryStrategy: (times) => Math.min(100 * times, 1000),
  });
}

/**
 * Resolves when the connection is ready. Only the first connection is waited for (up to `ms`): once
 * it has opened or failed, a command on a connection that is down fails at once, so an outage lets
 * requests pass without delaying each of them.
 */
function readiness(redis: Redis, ms: number): () => Promise<void> {
  let starting = true;
  const settle = () => (starting = false);
  redis.once('ready', settle);
  redis.once('close', settle);
  return () => {
    if (redis.status === 'ready') return Promise.resolve();
    if (!starting) return Promise.reject(new Error('Redis is not connected'));
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        redis.off('ready', done);
        redis.off('close', done);
        if (redis.status === 'ready') resolve();
        else reject(new Error('Redis is not connected'));
      };
      const timer = setTimeout(done, ms);
      redis.once('ready', done);
      redis.once('close', done);
    });
  };
}

/** A connection whose commands wait (briefly) for its first connect, for users that fall back on their own while Redis is away. */
export interface SharedRedis {
  redis: Redis;
  /** Resolves once connected; rejects while Redis is away (after the first connection's wait). */
  ready(): Promise<void>;
  disconnect(): void;
}

/** How long the limits' commands wait for the first connection (at start). */
const READY_WAIT_MS = 2000;

export function sharedRedis(url: string, name?: string): SharedRedis {
  const redis = redisConnection(url, { name, connectTimeoutMs: READY_WAIT_MS });
  // An outage makes each user fall back (local counts, or passing); the state store reports health.
  redis.on('error', () => undefined);
  return { redis, ready: readiness(redis, READY_WAIT_MS), disconnect: () => redis.disconnect() };
}
