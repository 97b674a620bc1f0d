/**
 * server/limits/clientLimitStore.ts over HTTP (docs/design.md#hostile-connections-and-data): ORCHE_CLIENT_RPM shared
 * by instances on one Redis, and holding while Redis comes and goes.
 */
import { connect, createServer as createNetServer } from 'node:net';
import { freePort } from '../../helpers/child';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-exposure-test-key-00000001';
let stack: Stack;
afterEach(async () => stack?.close());
const chatBody = { provider: 'kimi', messages: hi };

describeRedis('per-client limits with Redis', () => {
  test('two instances on one Redis share ORCHE_CLIENT_RPM from the first request: 20 alternating → exactly 10 served, then 429 with RateLimit headers', async () => {
    const prefix = uniquePrefix('client-rpm');
    const env = { PROVIDER_KIMI_API_KEY: K, ORCHE_CLIENT_RPM: '10', REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
    const a = await startStack(env, { keys: [{ key: K }] });
    const b = await startStack(env, { keys: [{ key: K }] });
    try {
      const answers = [];
      for (let i = 0; i < 20; i++) answers.push(await (i % 2 === 0 ? a : b).http.post('/api/chat').send(chatBody));
      const statuses = answers.map((r) => r.status);
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
      expect(statuses.slice(10)).toEqual(Array(10).fill(429));
      for (const r of answers) expect(r.headers['ratelimit-policy']).toMatch(/q=10; w=60/);
      expect(answers[10].body.error).toMatchObject({ code: 429, type: 'client_rate_limited' });
      expect(a.sim.calls.length + b.sim.calls.length).toBe(10);
    } finally {
      await a.close();
      await b.close();
      await dropPrefix(prefix);
    }
  });

  test('Redis down at start, then up: the limit holds once it is reachable (no failed script load kept for good)', async () => {
    const prefix = uniquePrefix('client-rpm-late');
    const port = await freePort();
    const redis = new URL(REDIS_URL);
    const env = { PROVIDER_KIMI_API_KEY: K, ORCHE_CLIENT_RPM: '3', REDIS_URL: `redis://127.0.0.1:${port}`, ORCHE_REDIS_PREFIX: prefix };
    stack = await startStack(env, { keys: [{ key: K }] });
    // Nothing listens yet: the request passes (an outage never fails requests).
    expect((await stack.http.post('/api/chat').send(chatBody)).status).toBe(200);
    // Redis "comes back": a TCP relay to the real one appears on the configured port.
    const relay = createNetServer((client) => {
      const upstream = connect(Number(redis.port || 6379), redis.hostname);
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((r) => relay.listen(port, '127.0.0.1', r));
    try {
      // ioredis reconnects on its own schedule; once the limiter counts, the policy header shows.
      let counted = false;
      for (let i = 0; i < 100 && !counted; i++) {
        await new Promise((r) => setTimeout(r, 50));
        counted = (await stack.http.get('/health')) && !!(await stack.http.post('/api/chat').send(chatBody)).headers['ratelimit-policy'];
      }
      expect(counted).toBe(true);
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await stack.http.post('/api/chat').send(chatBody)).status);
      expect(statuses).toContain(429);
    } finally {
      await stack.close();
      stack = undefined as never;
      relay.close();
      await dropPrefix(prefix);
    }
  });
});
