/**
 * server/http/requestShape.ts over HTTP (docs/design.md#hostile-connections-and-data): bodies, queries and
 * paths a client shaped to break orche get a 4xx in the error shape.
 */
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-exposure-test-key-00000001';
let stack: Stack;
afterEach(async () => stack?.close());
const start = (env: Record<string, string> = {}) => startStack({ PROVIDER_KIMI_API_KEY: K, ...env }, { keys: [{ key: K }] }).then((s) => (stack = s));

describe('request shape', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  test('JSON nested thousands of levels deep is a 400 on every JSON route, never a 500', async () => {
    await start();
    for (const [path, body] of [
      ['/api/chat', `{"provider":"kimi","messages":[{"role":"user","content":"hi"}],"x":${deep(5000)}}`],
      ['/v1/chat/completions', `{"model":"kimi","messages":[{"role":"user","content":"hi"}],"tools":${deep(5000)}}`],
      ['/api/chat/fanout', `{"messages":${deep(100_000)}}`],
    ]) {
      const res = await stack.http.post(path).set('Content-Type', 'application/json').send(body);
      expect([path, res.status, res.body.error?.type]).toEqual([path, 400, 'too_deep']);
    }
    // 64 levels are fine.
    const ok = await stack.http.post('/v1/chat/completions').set('Content-Type', 'application/json').send(`{"model":"kimi","messages":[{"role":"user","content":"hi"}],"x":${deep(60)}}`);
    expect(ok.status).toBe(200);
    expect(stack.sim.calls).toHaveLength(1);
  });

  test('a known path with the wrong method is a 405 with Allow', async () => {
    await start();
    for (const [method, path, allow] of [
      ['get', '/api/chat', 'POST'],
      ['put', '/v1/chat/completions', 'POST'],
      ['post', '/health', 'GET, HEAD'],
      ['delete', '/api/key-status/kimi', 'GET, HEAD'],
      ['get', '/api/keys/abc123/disable', 'POST'],
    ] as const) {
      const res = await stack.http[method](path);
      expect([method, path, res.status, res.headers.allow, res.body.error?.type]).toEqual([method, path, 405, allow, 'method_not_allowed']);
    }
    expect((await stack.http.get('/no/such/path')).status).toBe(404);
  });

  test('array or repeated query parameters are a 400, not "all providers"', async () => {
    await start({ ORCHE_ADMIN_TOKEN: 'admin-token-for-query-tests' });
    const auth = { Authorization: 'Bearer admin-token-for-query-tests' };
    for (const q of ['provider[]=kimi', 'provider=kimi&provider=qwen3', 'provider[x]=kimi']) {
      const res = await stack.http.post(`/api/keys/reset?${q}`).set(auth);
      expect([q, res.status, res.body.error?.type]).toEqual([q, 400, 'invalid_query']);
    }
    expect((await stack.http.get('/api/rotations?limit=1&limit=2')).status).toBe(400);
    expect((await stack.http.post('/api/keys/reset?provider=kimi').set(auth)).body).toEqual({ reset: 'kimi' });
  });

  test('an unknown id in a path is not echoed back at full length', async () => {
    await start({ ORCHE_ADMIN_TOKEN: 'admin-token-for-query-tests' });
    const long = 'q'.repeat(5000);
    for (const path of [`/api/key-status/${long}`, `/nothing/${long}`]) {
      const res = await stack.http.get(path);
      expect(res.status).toBe(404);
      expect(res.text).not.toContain('q'.repeat(65));
    }
    const chat = await stack.http.post('/api/chat').send({ provider: 'p'.repeat(64), messages: hi });
    expect(chat.status).toBe(404);
  });
});
