/**
 * Hostile upstream streams are bounded (SPEC §7, issue 12 hole 4): a flood of keep-alive comments
 * before the first data event is not held without end.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseConfig } from '../config';
import { MAX_HELD_CHARS } from '../providers/streams/heldEvents';
import { OpenRouterClient } from '../providers/upstream/openrouterClient';
import { streamAttempt } from '../providers/streams/streamAttempt';
import { postSse } from './helpers/sse';
import { TEST_ENV } from './helpers/stack';
import { createApp } from '../server/app';

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
