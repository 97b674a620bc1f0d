/**
 * Hardening over HTTP: client and status auth, CORS, security headers, per-client limits, input limits.
 */
import { hi, startStack, type Stack } from '../helpers/stack';

const K = 'sk-or-v1-security-test-key-0001';
let stack: Stack;
afterEach(async () => stack?.close());
const start = (env: Record<string, string> = {}) => startStack({ PROVIDER_KIMI_API_KEY: K, ...env }, { keys: [{ key: K }] }).then((s) => (stack = s));
const chatBody = { provider: 'kimi', messages: hi };

test('ORCHE_CLIENT_TOKENS: chat routes need a token: 401 without, 403 wrong, 200 right; status routes stay open', async () => {
  await start({ ORCHE_CLIENT_TOKENS: 'tok-alpha-123-client, tok-beta-456-client' });
  const none = await stack.http.post('/api/chat').send(chatBody);
  expect(none.status).toBe(401);
  expect(none.body.error).toMatchObject({ code: 401, type: 'unauthorized' });
  const wrong = await stack.http.post('/api/chat').set('Authorization', 'Bearer tok-gamma').send(chatBody);
  expect(wrong.status).toBe(403);
  expect(wrong.body.error.type).toBe('forbidden');
  expect((await stack.http.post('/api/chat').set('Authorization', 'Bearer tok-beta-456-client').send(chatBody)).status).toBe(200);
  expect((await stack.http.post('/api/chat/fanout').send({ messages: hi })).status).toBe(401);
  expect((await stack.http.get('/api/key-status')).status).toBe(200);
  expect(stack.sim.calls).toHaveLength(1);
});

test('ORCHE_PROTECT_STATUS=true: status routes need a client or admin token; /health and /ready stay open', async () => {
  await start({ ORCHE_PROTECT_STATUS: 'true', ORCHE_CLIENT_TOKENS: 'tok-alpha-123-client', ORCHE_ADMIN_TOKEN: 'admin-token-xyz' });
  for (const path of ['/status', '/api/key-status', '/api/key-status/kimi', '/api/models', '/api/rotations']) {
    const res = await stack.http.get(path);
    expect([path, res.status, res.body.error?.type]).toEqual([path, 401, 'unauthorized']);
  }
  expect((await stack.http.get('/status').set('Authorization', 'Bearer tok-alpha-123-client')).status).toBe(200);
  expect((await stack.http.get('/api/key-status').set('Authorization', 'Bearer admin-token-xyz')).status).toBe(200);
  expect((await stack.http.get('/api/key-status').set('Authorization', 'Bearer nope')).status).toBe(403);
  expect((await stack.http.get('/health')).status).toBe(200);
  expect((await stack.http.get('/ready')).status).toBe(200);
});

test('CORS: allowed origins get the headers and a preflight; others get none', async () => {
  await start({ ORCHE_CORS_ORIGINS: 'https://chat.example.com' });
  const ok = await stack.http.get('/api/models').set('Origin', 'https://chat.example.com');
  expect(ok.headers['access-control-allow-origin']).toBe('https://chat.example.com');
  expect(ok.headers['access-control-expose-headers']).toContain('Retry-After');
  const pre = await stack.http.options('/api/chat').set('Origin', 'https://chat.example.com').set('Access-Control-Request-Method', 'POST').set('Access-Control-Request-Headers', 'content-type,authorization');
  expect(pre.status).toBe(204);
  expect(pre.headers['access-control-allow-headers']).toContain('Authorization');
  const other = await stack.http.get('/api/models').set('Origin', 'https://evil.example.net');
  expect(other.headers['access-control-allow-origin']).toBeUndefined();
});

test('security headers on every response', async () => {
  await start();
  const res = await stack.http.get('/health');
  expect(res.headers).toMatchObject({
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  });
  expect(res.headers['x-powered-by']).toBeUndefined();
});

test('ORCHE_CLIENT_RPM: per token, with RateLimit headers and a 429 in the error shape', async () => {
  await start({ ORCHE_CLIENT_RPM: '3', ORCHE_CLIENT_TOKENS: 'tok-one-1111-client,tok-two-2222-client' });
  const as = (t: string) => stack.http.post('/api/chat').set('Authorization', `Bearer ${t}`).send(chatBody);
  const first = await as('tok-one-1111-client');
  expect(first.headers['ratelimit-policy']).toMatch(/q=3; w=60/);
  expect(first.headers['ratelimit']).toMatch(/r=2/);
  await as('tok-one-1111-client');
  await as('tok-one-1111-client');
  const over = await as('tok-one-1111-client');
  expect(over.status).toBe(429);
  expect(over.body.error).toMatchObject({ code: 429, type: 'client_rate_limited' });
  expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
  expect((await as('tok-two-2222-client')).status).toBe(200);
  expect(stack.sim.calls).toHaveLength(4);
});

test('input limits: too many messages, one message too large, too many fan-out providers', async () => {
  await start();
  const many = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: Array(1001).fill(hi[0]) });
  expect(many.status).toBe(400);
  expect(many.body.error.details[0]).toEqual({ path: 'messages', message: 'at most 1000 messages' });
  const large = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: [{ role: 'user', content: 'x'.repeat(600_000) }] });
  expect(large.status).toBe(400);
  expect(large.body.error.details[0].path).toBe('messages.0.content');
  const fan = await stack.http.post('/api/chat/fanout').send({ messages: hi, providers: Array(33).fill('kimi') });
  expect(fan.status).toBe(400);
  expect(fan.body.error.details[0].path).toBe('providers');
  expect(stack.sim.calls).toHaveLength(0);
});
