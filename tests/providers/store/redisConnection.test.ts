/**
 * providers/store/redisConnection.ts (docs/design.md#what-is-shared-through-redis-and-what-is-per-instance): every
 * Redis user of an instance gets its connection from one factory; the per-client and per-end-user
 * limits share one. Counted in Redis's own CLIENT LIST, by the names the factory gives.
 */
import Redis from 'ioredis';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-redis-connection-test-key-0001';

/** The names of the connections open now whose name starts with `prefix`. */
async function namedConnections(prefix: string): Promise<string[]> {
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const list = String(await admin.client('LIST'));
    return list
      .split('\n')
      .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '')
      .filter((name) => name.startsWith(prefix))
      .sort();
  } finally {
    admin.disconnect();
  }
}

describeRedis('Redis connections of one instance', () => {
  let stack: Stack | undefined;
  let prefix = '';
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
    await dropPrefix(prefix);
  });

  test('with ORCHE_CLIENT_RPM and ORCHE_USER_RPM on Redis: two connections, the state store and one the limits share', async () => {
    prefix = uniquePrefix('connections');
    stack = await startStack({ PROVIDER_KIMI_API_KEY: K, REDIS_URL, ORCHE_REDIS_PREFIX: prefix, ORCHE_CLIENT_RPM: '50', ORCHE_USER_RPM: '50' }, { keys: [{ key: K }] });
    const res = await stack.http.post('/api/chat').set('X-Orche-User', 'someone').send({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(200);
    // Both limits counted in Redis, through the one connection they share.
    const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      expect(await admin.keys(`${prefix}client-rl:*`)).toHaveLength(1);
      expect(await admin.keys(`${prefix}user-rl:*`)).toHaveLength(2);
    } finally {
      admin.disconnect();
    }
    expect(await namedConnections(prefix)).toEqual([`${prefix}limits`, `${prefix}state`]);
  });

  test('without per-client or end-user limits: the state store\'s connection only', async () => {
    prefix = uniquePrefix('connections');
    stack = await startStack({ PROVIDER_KIMI_API_KEY: K, REDIS_URL, ORCHE_REDIS_PREFIX: prefix }, { keys: [{ key: K }] });
    expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
    expect(await namedConnections(prefix)).toEqual([`${prefix}state`]);
  });
});
