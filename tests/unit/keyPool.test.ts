/**
 * The key pool's whole suite over every state store, so that their behaviour cannot drift.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore } from '../../providers/store/memory';
import { RedisStore } from '../../providers/store/redis';
import { SnapshotStore } from '../../providers/store/snapshot';
import type { StateStore } from '../../providers/store/types';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../helpers/redis';
import { describeKeyPoolSuite } from './poolFixtures';

const quiet = { info: () => undefined, warn: () => undefined };

describeKeyPoolSuite('MemoryStore', () => new MemoryStore());

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
describeKeyPoolSuite('SnapshotStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'orche-pool-'));
  dirs.push(dir);
  return new SnapshotStore(join(dir, 'state.json'), { logger: quiet, now: Date.now });
});

describeRedis('redis', () => {
  const prefixes = new Map<StateStore, string>();
  describeKeyPoolSuite(
    'RedisStore',
    async () => {
      const prefix = uniquePrefix('pool');
      const store = new RedisStore({ url: REDIS_URL, prefix, logger: quiet });
      if (!(await store.connected())) throw new Error('Redis did not connect');
      prefixes.set(store, prefix);
      return store;
    },
    async (store) => {
      // A test that passed on the local fallback would prove nothing about Redis.
      expect(store.health()).toEqual({ kind: 'redis', ok: true });
      await store.close();
      await dropPrefix(prefixes.get(store)!);
    },
  );
});
