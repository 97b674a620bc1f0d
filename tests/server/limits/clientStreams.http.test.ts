/**
 * server/limits/clientStreams.ts and the bounds on upstream answers, over HTTP
 * (docs/design.md#hostile-connections-and-data): answers too large, streams too long, streams per client.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { parseConfig } from '../../../config';
import { createApp } from '../../../server/app';
import { postSse } from '../../helpers/sse';
import { hi, LogCapture, TEST_ENV, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-exposure-test-key-00000001';
let stack: Stack;
afterEach(async () => stack?.close());
const chatBody = { provider: 'kimi', messages: hi };

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
