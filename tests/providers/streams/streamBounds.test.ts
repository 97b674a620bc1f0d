/**
 * Hostile upstream streams are bounded (docs/design.md#upstream-answers): a flood of keep-alive comments
 * before the first data event is not held without end.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { Writable } from 'node:stream';
import { parseConfig } from '../../../config';
import { MAX_HELD_CHARS } from '../../../providers/streams/heldEvents';
import { OpenRouterClient } from '../../../providers/upstream/openrouterClient';
import { streamAttempt } from '../../../providers/streams/streamAttempt';
import { eventually } from '../../helpers/child';
import { postSse } from '../../helpers/sse';
import { TEST_ENV } from '../../helpers/stack';
import { createApp } from '../../../server/app';

const K = 'sk-or-v1-stream-bounds-test-key-0000001';
const FLOOD_BYTES = 6 * 1024 * 1024;
const chunk = (content: string) => `data: ${JSON.stringify({ id: 'gen-1', choices: [{ index: 0, delta: { content } }] })}\n\n`;

/** An upstream that sends megabytes of `:\n\n` in 64 KiB writes, then a short good stream. */
async function floodUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const block = ':\n\n'.repeat(Math.floor((64 * 1024) / 3));
      for (let sent = 0; sent < FLOOD_BYTES; sent += block.length) {
        if (!res.write(block)) await new Promise((r) => res.once('drain', r));
      }
      res.end(`${chunk('hello')}data: [DONE]\n\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`, server };
}

test('megabytes of keep-alives before the first data event: what is held stays within 64 KiB', async () => {
  const up = await floodUpstream();
  const client = new OpenRouterClient({ baseUrl: up.url });
  try {
    const config = parseConfig({ ...TEST_ENV, PROVIDER_KIMI_API_KEY: K, OPENROUTER_BASE_URL: up.url });
    const provider = { config: config.providers.find((p) => p.slug === 'kimi')! } as never;
    const attempt = streamAttempt(client, { messages: [] }, { now: Date.now });
    const { outcome, value } = await attempt({ provider, keyId: 'k', key: K, timeoutMs: 10_000 });
    expect(outcome.kind).toBe('success');
    const heldChars = value!.head.reduce((n, ev) => n + ev.raw.length, 0);
    expect(heldChars).toBeLessThanOrEqual(MAX_HELD_CHARS + chunk('hello').length);
    expect(value!.head.at(-1)!.data).toContain('hello');
    value!.abort();
  } finally {
    client.close();
    up.server.closeAllConnections();
    await new Promise<void>((r) => up.server.close(() => r()));
  }
});

test('through orche: the client gets the answer and at most 64 KiB of the flood before it', async () => {
  const up = await floodUpstream();
  const config = parseConfig({ ...TEST_ENV, PROVIDER_KIMI_API_KEY: K, OPENROUTER_BASE_URL: up.url, PORT: '0', HOST: '127.0.0.1' });
  const orche = createApp(config, { logStream: process.stderr });
  const { url } = await orche.listen(0, '127.0.0.1');
  try {
    const s = await postSse(`${url}/api/chat`, { provider: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true });
    expect(s.status).toBe(200);
    expect(s.text).toContain('hello');
    expect(s.text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(s.text.indexOf('data:')).toBeLessThanOrEqual(MAX_HELD_CHARS);
  } finally {
    await orche.close();
    up.server.closeAllConnections();
    await new Promise<void>((r) => up.server.close(() => r()));
  }
});

/**
 * An upstream that streams for as long as it is read (64 KiB content chunks, with backpressure):
 * a long answer, which only orche's own bounds can end. `closedAt` is when orche hung up on it.
 */
async function endlessUpstream(): Promise<{ url: string; server: Server; calls: Array<{ closedAt?: number }> }> {
  const calls: Array<{ closedAt?: number }> = [];
  const piece = chunk('y'.repeat(64 * 1024));
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', async () => {
      const call: { closedAt?: number } = {};
      calls.push(call);
      res.on('close', () => (call.closedAt = Date.now()));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      while (!res.destroyed) {
        if (res.write(piece)) continue;
        await new Promise<void>((r) => {
          const done = () => (res.off('drain', done), res.off('close', done), r());
          res.on('drain', done);
          res.on('close', done);
        });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`, server, calls };
}

describe('a client that stops reading its stream (docs/design.md#streams-that-outlive-their-reader)', () => {
  const v1 = { path: '/v1/chat/completions', body: { model: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true } };
  const fanout = { path: '/api/chat/fanout', body: { providers: ['kimi'], messages: [{ role: 'user', content: 'hi' }], stream: true } };
  test.each([
    ['the idle timeout (ORCHE_REQUEST_TIMEOUT_MS)', v1, { ORCHE_REQUEST_TIMEOUT_MS: '800', ORCHE_MAX_STREAM_MS: '600000' }, 800],
    ['ORCHE_MAX_STREAM_MS', v1, { ORCHE_REQUEST_TIMEOUT_MS: '60000', ORCHE_MAX_STREAM_MS: '1000' }, 1000],
    ['the idle timeout, on a streaming fan-out', fanout, { ORCHE_REQUEST_TIMEOUT_MS: '800', ORCHE_MAX_STREAM_MS: '600000' }, 800],
  ])('is released by %s: its connection is closed, the upstream call aborted and its stream slot freed', async (_bound, route, env, boundMs) => {
    const up = await endlessUpstream();
    const config = parseConfig({ ...TEST_ENV, PROVIDER_KIMI_API_KEY: K, OPENROUTER_BASE_URL: up.url, PORT: '0', HOST: '127.0.0.1', ORCHE_MAX_STREAMS_PER_CLIENT: '1', ...env });
    const orche = createApp(config, { logStream: new Writable({ write: (_c, _e, cb) => cb() }) });
    const { url } = await orche.listen(0, '127.0.0.1');
    const { hostname, port } = new URL(url);
    const body = JSON.stringify(route.body);
    const client = connect(Number(port), hostname);
    try {
      // The client sends its request and never reads a byte of the answer.
      const started = Date.now();
      client.pause();
      client.on('error', () => undefined);
      const clientClosed = new Promise<number>((r) => client.once('close', () => r(Date.now())));
      client.write(`POST ${route.path} HTTP/1.1\r\nHost: orche\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      await eventually(async () => up.calls[0]?.closedAt, 'the upstream call aborted', boundMs + 4000).catch(() => undefined);
      expect(up.calls).toHaveLength(1);
      // Released within the bound (plus the time the socket buffers take to fill), not held without end.
      expect(up.calls[0].closedAt ?? Infinity).toBeLessThan(started + boundMs + 3000);
      // The client's connection was closed by orche: once the client reads again, it sees the end at once.
      client.resume();
      let timer: NodeJS.Timeout | undefined;
      const clientClosedAt = await Promise.race([clientClosed, new Promise<number>((r) => (timer = setTimeout(() => r(Infinity), 2000)))]);
      clearTimeout(timer);
      expect(clientClosedAt).toBeLessThan(Infinity);
      // Its slot is free: the same client (same address) opens a new stream, not a 429 too_many_streams.
      const next = await postSse(`${url}${route.path}`, route.body, () => true);
      expect(next.status).toBe(200);
    } finally {
      client.destroy();
      await orche.close();
      up.server.closeAllConnections();
      await new Promise<void>((r) => up.server.close(() => r()));
    }
  });
});

