/**
 * docs/design.md#hostile-connections-and-data "Exposure and bounds": per-client limits that hold, one identity per client,
 * bounded upstream answers and requests. Each test here failed on the code before its fix.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { parseConfig } from '../../../config';
import { createApp } from '../../../server/app';
import { freePort } from '../../helpers/child';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { postSse } from '../../helpers/sse';
import { hi, LogCapture, startStack, TEST_ENV, type Stack } from '../../helpers/stack';
import { ROOT } from '../../helpers/paths';

const K = 'sk-or-v1-exposure-test-key-00000001';
let stack: Stack;
afterEach(async () => stack?.close());
const start = (env: Record<string, string> = {}) => startStack({ PROVIDER_KIMI_API_KEY: K, ...env }, { keys: [{ key: K }] }).then((s) => (stack = s));
const chatBody = { provider: 'kimi', messages: hi };

describe('client identity (hole 2)', () => {
  test('an invented Bearer token per request never opens its own bucket: the address is the identity', async () => {
    await start({ ORCHE_CLIENT_RPM: '5' });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await stack.http.post('/api/chat').set('Authorization', `Bearer invented-${i}-${Math.random()}`).send(chatBody)).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(stack.sim.calls).toHaveLength(5);
  });

  test('X-Forwarded-For from loopback is ignored by default (ORCHE_TRUST_PROXY=false): a spoofed address per request is still one client', async () => {
    await start({ ORCHE_CLIENT_RPM: '3' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await stack.http.post('/api/chat').set('X-Forwarded-For', `203.0.113.${i + 1}`).send(chatBody)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  test('ORCHE_TRUST_PROXY=1: the address X-Forwarded-For names is the client, one bucket each', async () => {
    await start({ ORCHE_CLIENT_RPM: '2', ORCHE_TRUST_PROXY: '1' });
    const as = (ip: string) => stack.http.post('/api/chat').set('X-Forwarded-For', ip).send(chatBody);
    expect([(await as('203.0.113.1')).status, (await as('203.0.113.1')).status, (await as('203.0.113.1')).status]).toEqual([200, 200, 429]);
    expect([(await as('203.0.113.2')).status, (await as('203.0.113.2')).status]).toEqual([200, 200]);
    // Only the hop next to orche counts: an address the client put further left is not trusted.
    expect((await as('198.51.100.7, 203.0.113.1')).status).toBe(429);
  });
});

describeRedis('per-client limits with Redis (hole 1)', () => {
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

/** A local upstream whose behaviour each test sets: big JSON bodies, endless or held streams. */
interface Upstream {
  url: string;
  calls: number;
  closedEarly: number;
  /** Ends every held stream with [DONE]. */
  release(): void;
  close(): Promise<void>;
}
async function startUpstream(mode: { bigJsonBytes?: number; endless?: boolean; held?: boolean }): Promise<Upstream> {
  const held: Array<() => void> = [];
  const up: Upstream = {
    url: '',
    calls: 0,
    closedEarly: 0,
    release: () => held.splice(0).forEach((f) => f()),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const chunk = (content: string) => `data: ${JSON.stringify({ id: 'gen-1', choices: [{ index: 0, delta: { content } }] })}\n\n`;
  const server = createServer((req, res) => {
    up.calls++;
    req.resume();
    res.on('close', () => {
      if (!res.writableFinished) up.closedEarly++;
    });
    req.on('end', () => {
      if (mode.bigJsonBytes) {
        res.writeHead(200, { 'content-type': 'application/json' });
        const filler = 'z'.repeat(64 * 1024);
        res.write(`{"id":"gen-1","choices":[{"index":0,"message":{"role":"assistant","content":"`);
        let sent = 0;
        const more = () => {
          while (sent < mode.bigJsonBytes! && !res.destroyed) {
            sent += filler.length;
            if (!res.write(filler)) return void res.once('drain', more);
          }
          if (!res.destroyed) res.end('"},"finish_reason":"stop"}]}');
        };
        more();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(chunk('first'));
      if (mode.endless) {
        const timer = setInterval(() => res.write(chunk('more')), 20);
        res.on('close', () => clearInterval(timer));
        return;
      }
      held.push(() => res.end(`${chunk('last')}data: [DONE]\n\n`));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
  return up;
}

describe('bounds on upstream answers and client streams', () => {
  let up: Upstream | undefined;
  afterEach(async () => {
    await up?.close();
    up = undefined;
  });
  const startWith = async (upstream: Upstream, env: Record<string, string>) => {
    up = upstream;
    const logs = new LogCapture();
    const config = parseConfig({ ...TEST_ENV, OPENROUTER_BASE_URL: upstream.url, PROVIDER_KIMI_API_KEY: K, ...env });
    const orche = createApp(config, { logStream: logs });
    const { url } = await orche.listen(0, '127.0.0.1');
    stack = { orche, url, logs, http: request(url), sim: undefined as never, close: () => orche.close() };
    return url;
  };

  test('ORCHE_MAX_UPSTREAM_BYTES: a JSON answer over the cap is a 502 upstream_too_large, not retried, its connection cut', async () => {
    await startWith(await startUpstream({ bigJsonBytes: 32 * 1024 * 1024 }), { ORCHE_MAX_UPSTREAM_BYTES: String(1024 * 1024) });
    const res = await stack.http.post('/api/chat').send(chatBody);
    expect(res.status).toBe(502);
    expect(res.body.error).toMatchObject({ code: 502, type: 'upstream_too_large' });
    expect(res.body.error.message).toMatch(/1048576 bytes/);
    expect(up!.calls).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(up!.closedEarly).toBe(1);
  });

  test('ORCHE_MAX_STREAM_MS: an endless stream ends with an error chunk and [DONE]', async () => {
    const url = await startWith(await startUpstream({ endless: true }), { ORCHE_MAX_STREAM_MS: '300' });
    const s = await postSse(`${url}/api/chat`, { ...chatBody, stream: true });
    expect(s.status).toBe(200);
    expect(s.text).toContain('first');
    const last = s.events.filter((e) => e.data !== undefined).slice(-2);
    expect(JSON.parse(last[0].data!).error).toMatchObject({ code: 504, metadata: { reason: 'max_stream_duration' } });
    expect(last[1].data).toBe('[DONE]');
    await new Promise((r) => setTimeout(r, 50));
    expect(up!.closedEarly).toBe(1);
  });

  test('ORCHE_MAX_STREAMS_PER_CLIENT: one stream over the limit is a 429; a slot frees when a stream ends', async () => {
    const url = await startWith(await startUpstream({ held: true }), { ORCHE_MAX_STREAMS_PER_CLIENT: '2' });
    // A streaming fan-out holds one stream per leg: three legs are over a limit of two.
    const fan = await stack.http.post('/api/chat/fanout').send({ providers: ['kimi', 'qwen3', 'glm45'], messages: hi, stream: true });
    expect(fan.status).toBe(429);
    expect(fan.body.error.type).toBe('too_many_streams');
    expect(up!.calls).toBe(0);
    const open = [postSse(`${url}/api/chat`, { ...chatBody, stream: true }), postSse(`${url}/v1/chat/completions`, { model: 'kimi', messages: hi, stream: true })];
    while (up!.calls < 2) await new Promise((r) => setTimeout(r, 5));
    const third = await stack.http.post('/api/chat').send({ ...chatBody, stream: true });
    expect(third.status).toBe(429);
    expect(third.body.error).toMatchObject({ code: 429, type: 'too_many_streams' });
    up!.release();
    const done = await Promise.all(open);
    expect(done.map((d) => d.status)).toEqual([200, 200]);
    const again = postSse(`${url}/api/chat`, { ...chatBody, stream: true });
    while (up!.calls < 3) await new Promise((r) => setTimeout(r, 5));
    up!.release();
    expect((await again).status).toBe(200);
  });

  test('a streaming fan-out holds one stream per leg whatever the case of its path', async () => {
    await startWith(await startUpstream({ held: true }), { ORCHE_MAX_STREAMS_PER_CLIENT: '2' });
    const fan = await stack.http.post('/api/chat/FanOut').send({ providers: ['kimi', 'qwen3', 'glm45'], messages: hi, stream: true });
    expect(fan.status).toBe(429);
    expect(fan.body.error.type).toBe('too_many_streams');
    expect(up!.calls).toBe(0);
  });
});

describe('a fan-out costs one request per leg', () => {
  test('ORCHE_CLIENT_RPM=5: a 3-leg fan-out spends 3; the next 3-leg one is refused before any upstream call', async () => {
    const keys = { PROVIDER_KIMI_API_KEY: K, PROVIDER_QWEN3_API_KEY: `${K}q`, PROVIDER_GLM45_API_KEY: `${K}g` };
    stack = await startStack({ ...keys, ORCHE_CLIENT_RPM: '5' }, { keys: [{ key: K }, { key: `${K}q` }, { key: `${K}g` }] });
    const fan = { providers: ['kimi', 'qwen3', 'glm45'], messages: hi };
    expect((await stack.http.post('/api/chat/fanout').send(fan)).status).toBe(200);
    const over = await stack.http.post('/api/chat/fanout').send(fan);
    expect(over.status).toBe(429);
    expect(over.body.error.type).toBe('client_rate_limited');
    expect(stack.sim.calls).toHaveLength(3);
  });

  test('the charge follows the route, not the spelling of its path: /api/chat/Fanout and a trailing slash are charged per leg too', async () => {
    const keys = { PROVIDER_KIMI_API_KEY: K, PROVIDER_QWEN3_API_KEY: `${K}q`, PROVIDER_GLM45_API_KEY: `${K}g` };
    stack = await startStack({ ...keys, ORCHE_CLIENT_RPM: '5' }, { keys: [{ key: K }, { key: `${K}q` }, { key: `${K}g` }] });
    const fan = { providers: ['kimi', 'qwen3', 'glm45'], messages: hi };
    const statuses: number[] = [];
    for (const path of ['/api/chat/Fanout', '/API/CHAT/FANOUT/', '/api/chat/Fanout', '/api/chat/fanout']) statuses.push((await stack.http.post(path).send(fan)).status);
    expect(statuses).toEqual([200, 429, 429, 429]);
    expect(stack.sim.calls).toHaveLength(3);
  });

  test('without a provider list, a fan-out is charged one leg per provider it calls', async () => {
    const keys = { PROVIDER_KIMI_API_KEY: K, PROVIDER_QWEN3_API_KEY: `${K}q`, PROVIDER_GLM45_API_KEY: `${K}g` };
    stack = await startStack({ ...keys, ORCHE_CLIENT_RPM: '5' }, { keys: [{ key: K }, { key: `${K}q` }, { key: `${K}g` }] });
    expect((await stack.http.post('/api/chat/fanout').send({ messages: hi })).status).toBe(200);
    const calls = stack.sim.calls.length;
    const over = await stack.http.post('/api/chat/fanout').send({ messages: hi });
    expect([calls, over.status]).toEqual([3, 429]);
  });
});

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

describe('start-up refuses weak tokens (the real entry point)', () => {
  const ENTRY = resolve(ROOT, 'dist/server/index.js');
  test.each([
    ['ORCHE_CLIENT_TOKENS', 'short-token-1'],
    ['ORCHE_ADMIN_TOKEN', 'admin token 12345'],
  ])('%s=%s: exit 2 within seconds with one line naming the variable, never the value', (variable, value) => {
    if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run \`npm run build\` first (\`npm test\` does)`);
    const dir = mkdtempSync(join(tmpdir(), 'orche-weak-'));
    try {
      const r = spawnSync(process.execPath, [ENTRY], { cwd: dir, env: { PATH: process.env.PATH, PROVIDER_KIMI_API_KEY: K, PORT: '0', HOST: '127.0.0.1', [variable]: value }, timeout: 10_000, encoding: 'utf8' });
      expect(r.status).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`configuration error: ${variable}: expected `));
      expect(r.stderr + r.stdout).not.toContain(value);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
