import type { Config } from '../../config';
import { MemoryStore } from './memory';
import { RedisStore } from './redis';
import { SnapshotStore, type StoreLog } from './snapshot';
import type { StateStore } from './types';

/**
 * The one place the state store is chosen: REDIS_URL (shared by every instance) wins over
 * ORCHE_STATE_FILE (one instance, saved to a file); with neither, memory.
 */
export function createStore(config: Pick<Config, 'redis' | 'stateFile'>, logger: StoreLog, now: () => number = Date.now): StateStore {
  if (config.redis) {
    if (config.stateFile) logger.warn('ORCHE_STATE_FILE is ignored: REDIS_URL is set and state lives in Redis', { store: 'redis' });
    return new RedisStore({ url: config.redis.url, prefix: config.redis.prefix, logger });
  }
  if (config.stateFile) return new SnapshotStore(config.stateFile, { logger, now });
  return new MemoryStore();
}
