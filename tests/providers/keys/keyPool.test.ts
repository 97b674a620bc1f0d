/**
 * The key pool's whole suite over every state store, so that their behaviour cannot drift.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore } from '../../../providers/store/memory';
import { SnapshotStore } from '../../../providers/store/snapshot';
import { describeRedis, redisStores } from '../../helpers/redis';
import { describeKeyPoolSuite } from '../../helpers/poolFixtures';

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
  const stores = redisStores('pool', () => quiet);
  describeKeyPoolSuite('RedisStore', stores.make, stores.cleanup);
});
