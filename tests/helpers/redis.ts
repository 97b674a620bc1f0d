import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { globEscape, RedisStore } from '../../providers/store/redis';
import type { StoreLog } from '../../providers/store/snapshot';
import type { StateStore } from '../../providers/store/types';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A PING in a child process: jest decides which tests to define synchronously, at load time. */
const PROBE = `
const u = new URL(process.argv[1]);
const s = require('node:net').connect(Number(u.port || 6379), u.hostname);
s.setTimeout(500, () => process.exit(1));
s.on('error', () => process.exit(1));
s.on('connect', () => s.write('PING\\r\\n'));
s.on('data', (d) => process.exit(String(d).includes('PONG') ? 0 : 1));
`;

let probed: boolean | undefined;

/** Whether a Redis answers at REDIS_URL (asked once per test file). */
export function redisAvailable(): boolean {
  probed ??= spawnSync(process.execPath, ['-e', PROBE, REDIS_URL], { timeout: 3000 }).status === 0;
  return probed;
}

/**
 * A describe block for tests that need Redis: without one they are skipped with a loud warning,
 * except in CI (CI=true), where a missing Redis fails the run.
 */
export function describeRedis(name: string, body: () => void): void {
  if (redisAvailable()) {
    describe(name, body);
    return;
  }
  if (process.env.CI === 'true') {
    describe(name, () => {
      test('needs Redis', () => {
        throw new Error(`Redis is required in CI but does not answer at ${REDIS_URL}`);
      });
    });
    return;
  }
  console.warn(`\n!!! SKIPPING "${name}": no Redis answers at ${REDIS_URL}. Start redis-server or run .ci/run. !!!\n`);
  describe.skip(name, body);
}

/** A prefix no other test or deployment uses. */
export function uniquePrefix(label: string): string {
  return `orche-test:${label}:${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key under a test prefix. */
export async function dropPrefix(prefix: string, url = REDIS_URL): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const keys = await r.keys(`${globEscape(prefix)}*`);
    if (keys.length > 0) await r.del(...keys);
  } finally {
    r.disconnect();
  }
}

/**
 * A RedisStore per test under a prefix of its own, and the cleanup that checks the test really ran
 * on Redis (a test that passed on the local fallback would prove nothing about Redis), then drops its keys.
 */
export function redisStores(label: string, logger: () => StoreLog): { make: () => Promise<StateStore>; cleanup: (store: StateStore) => Promise<void> } {
  const prefixes = new Map<StateStore, string>();
  return {
    async make() {
      const prefix = uniquePrefix(label);
      const store = new RedisStore({ url: REDIS_URL, prefix, logger: logger() });
      if (!(await store.connected())) throw new Error('Redis did not connect');
      prefixes.set(store, prefix);
      return store;
    },
    async cleanup(store) {
      expect(store.health()).toEqual({ kind: 'redis', ok: true });
      await store.close();
      await dropPrefix(prefixes.get(store)!);
    },
  };
}
