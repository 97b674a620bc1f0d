/**
 * A whole scenario with recognisable keys, at LOG_LEVEL=debug: no key may appear in any response
 * body, response header or log line (SPEC §3: keys are never returned or logged).
 */
import { keyId } from '../providers/keys';
import { hi, startStack, type Stack } from './helpers/stack';

const CANARY = 'LEAKCANARY';
const keys = {
  a: `sk-or-v1-${CANARY}a9f1e2d3c4b5a697887766554433221100ffeeddccbbaa`,
  b: `sk-or-v1-${CANARY}b8e2d3c4b5a6978877665544332211ffeeddccbbaa0099`,
  c: `team9:sk-or-v1-${CANARY}c7d3c4b5a697887766554433221100ffeeddccbbaa11`,
  q: `sk-or-v1-${CANARY}d6c4b5a697887766554433221100ffeeddccbbaa112233`,
};
const secret = (k: string) => k.replace(/^team9:/, '');
// The part of a key after the 12-character preview head: none of it may ever be shown.
const hidden = Object.values(keys).map((k) => secret(k).slice(12, -3));

let stack: Stack;
afterAll(async () => stack?.close());

test('no key material in any response, header or log line across a rotation-heavy scenario', async () => {
  stack = await startStack(
    {
      LOG_LEVEL: 'debug',
      ORCHE_ADMIN_TOKEN: 'leak-test-admin-token',
      PROVIDER_KIMI_API_KEY: keys.a,
      PROVIDER_KIMI_BACKUP_KEYS: `${keys.b},${keys.c}`,
      PROVIDER_KIMI_FALLBACK: 'qwen3',
      PROVIDER_QWEN3_API_KEY: keys.q,
      ORCHE_REQUEST_TIMEOUT_MS: '200',
    },
    {
      keys: [
        { key: secret(keys.a) },
        { key: secret(keys.b), revoked: true },
        { key: secret(keys.c), credits: false },
        { key: secret(keys.q) },
      ],
    },
  );
  const seen: string[] = [];
  const record = (res: { status: number; headers: Record<string, unknown>; text: string }) => {
    seen.push(JSON.stringify(res.headers), res.text);
    return res;
  };
  const auth = { Authorization: 'Bearer leak-test-admin-token' };

  stack.sim.addRule({ match: { key: secret(keys.a) }, type: 'free-per-min', times: 1 });
  record(await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi }));
  stack.sim.addRule({ type: 'status', status: 502, times: 2 });
  record(await stack.http.post('/api/chat').send({ provider: 'qwen3', messages: hi }));
  stack.sim.addRule({ type: 'hang', times: 1 });
  record(await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi }));
  stack.sim.addRule({ type: 'garbage', times: 1 });
  record(await stack.http.post('/api/chat').send({ provider: 'qwen3', messages: hi }));
  stack.sim.addRule({ type: 'upstream-429', times: 1 });
  record(await stack.http.post('/api/chat/fanout').send({ messages: hi }));
  record(await stack.http.post('/api/chat').send({ provider: 'kimi', messages: [{ role: 'user', content: 7 }] }));
  for (const path of ['/health', '/ready', '/status', '/api/key-status', '/api/key-status/kimi', '/api/models', '/api/rotations']) {
    record(await stack.http.get(path));
  }
  // Streams: a rotation before the first byte, a failure after it, the OpenAI route and a streamed fan-out.
  stack.sim.addRule({ match: { key: secret(keys.a) }, type: 'generic-429', times: 1 });
  record(await stack.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi, stream: true }));
  stack.sim.addRule({ type: 'stream-error', afterChunks: 2, times: 1 });
  record(await stack.http.post('/api/chat').send({ provider: 'qwen3', messages: hi, stream: true }));
  record(await stack.http.post('/v1/chat/completions').send({ model: 'nope', messages: hi }));
  record(await stack.http.post('/api/chat/fanout').send({ messages: hi, stream: true }));
  record(await stack.http.get('/v1/models'));
  record(await stack.http.get('/metrics'));
  record(await stack.http.get('/api/usage'));
  // Key probing asks OpenRouter's /key with every key; what it learns is shown by id only.
  await stack.orche.probeNow();
  record(await stack.http.get('/api/key-status'));
  record(await stack.http.post(`/api/keys/${keyId(secret(keys.b))}/reactivate`).set(auth));
  record(await stack.http.post(`/api/keys/${keyId(secret(keys.b))}/disable`).set(auth));
  record(await stack.http.post('/api/keys/reset').set(auth));

  // The scenario did what it should: rotations, disables and failures all happened and were logged.
  const logText = stack.logs.lines.join('\n');
  expect(logText).toContain('"message":"rotation"');
  expect(logText).toContain('"message":"key disabled"');
  expect(logText).toContain('"message":"key cooling"');
  expect(stack.logs.lines.length).toBeGreaterThan(20);

  const everything = [...seen, ...stack.logs.lines].join('\n');
  for (const k of Object.values(keys)) expect(everything).not.toContain(secret(k));
  for (const h of hidden) expect(everything).not.toContain(h);
  expect(everything).not.toContain(CANARY);
});
