/**
 * A whole scenario with recognisable keys, at LOG_LEVEL=debug: no key may appear in any response
 * body, response header or log line (docs/design.md#key-material-and-relayed-text: keys are never returned or logged).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { parseConfig } from '../../../config';
import { keyId } from '../../../providers/keys/keys';
import { createApp } from '../../../server/app';
import { postSse } from '../../helpers/sse';
import { hi, LogCapture, startStack, TEST_ENV, type Stack } from '../../helpers/stack';

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

/**
 * A hostile (or careless) upstream that repeats the Authorization header in every place it can
 * reach: error message, metadata.raw, a 200 body's content, stream chunks and a mid-stream error
 * chunk. The mode is chosen by the last message's text, so no state is shared between requests.
 */
async function startHostileUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const auth = req.headers.authorization ?? '';
      const bare = auth.replace(/^Bearer\s+/i, '');
      const body = JSON.parse(raw || '{}') as { model?: string; stream?: boolean; messages?: Array<{ content?: string }> };
      const mode = body.messages?.at(-1)?.content ?? '';
      const echo = `you sent ${auth} (key ${bare}) and ${'x'.repeat(600)}`;
      const json = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (mode === 'error500') return json(500, { error: { code: 500, message: echo, metadata: { raw: auth } } });
      if (mode === 'error400') return json(400, { error: { code: 400, message: echo, metadata: { raw: auth } } });
      if (mode === 'huge400') return json(400, { error: { code: 400, message: `${bare} ${'y'.repeat(500_000)}` } });
      if (mode === 'congested') return json(429, { error: { code: 429, message: 'Provider returned error', metadata: { raw: `${bare} is temporarily rate-limited upstream ${auth}`, provider_name: 'X' } } });
      // The key spelled with JSON escapes: text that does not contain it, JSON that parses to it.
      const escaped = (k: string) => [...k].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
      const withEscapedKey = (value: unknown) => JSON.stringify(value).replace('KEYHERE', `Bearer ${escaped(bare)} and \\/${escaped(bare.slice(0, 1))}${bare.slice(1)}`);
      if (mode === 'escaped400') {
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(withEscapedKey({ error: { code: 400, message: 'you sent KEYHERE', metadata: { raw: 'KEYHERE' } } }));
      }
      if (mode === 'escaped' && !body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(withEscapedKey({ id: 'gen-1', model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: 'you sent KEYHERE' }, finish_reason: 'stop' }] }));
      }
      if (mode === 'escaped') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const text = withEscapedKey({ id: 'gen-1', model: body.model, choices: [{ index: 0, delta: { content: 'hello KEYHERE' } }] });
        // Cut inside an escape: `\u00` in one write, `73…` in the next.
        const cut = text.indexOf('\\u00') + 4;
        res.write(`data: ${text.slice(0, cut)}`);
        setTimeout(() => res.end(`${text.slice(cut)}\n\ndata: [DONE]\n\n`), 5);
        return;
      }
      if (!body.stream) {
        return json(200, { id: 'gen-1', model: body.model, choices: [{ index: 0, message: { role: 'assistant', content: echo }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (content: string) => `data: ${JSON.stringify({ id: 'gen-1', model: body.model, choices: [{ index: 0, delta: { content } }] })}\n\n`;
      // The key split across writes: a masker that looks at one chunk at a time would miss it.
      const first = chunk(`hello ${auth}`);
      const cut = first.indexOf(bare) + 10;
      res.write(first.slice(0, cut));
      setTimeout(() => {
        res.write(first.slice(cut) + `: comment ${auth}\n\n` + chunk(`again ${bare}`));
        if (mode === 'midstream') {
          res.end(`data: ${JSON.stringify({ error: { code: 502, message: echo, metadata: { raw: auth } }, choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }] })}\n\n`);
        } else res.end(`${chunk(`bye ${bare}`)}data: [DONE]\n\n`);
      }, 5);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

test('a hostile upstream echoing the key everywhere: no key in any response body or log line, upstream messages capped at 500 characters', async () => {
  const shaped = `sk-or-v1-${CANARY}e5b4a697887766554433221100ffeeddccbbaa11223344`;
  // The attempt's key is masked even when it does not look like a key.
  const plain = `plainkey${CANARY}Q7w9Z2x4`;
  const up = await startHostileUpstream();
  const logs = new LogCapture();
  const config = parseConfig({ ...TEST_ENV, OPENROUTER_BASE_URL: up.url, PROVIDER_KIMI_API_KEY: shaped, PROVIDER_QWEN3_API_KEY: plain, ORCHE_MAX_ATTEMPTS: '1' });
  const orche = createApp(config, { logStream: logs });
  const { url } = await orche.listen(0, '127.0.0.1');
  const http = request(url);
  const seen: string[] = [];
  const msg = (mode: string) => [{ role: 'user', content: mode }];
  try {
    for (const provider of ['kimi', 'qwen3']) {
      const key = provider === 'kimi' ? shaped : plain;
      const answers = [];
      for (const mode of ['error500', 'error400', 'huge400', 'ok']) {
        answers.push(await http.post('/api/chat').send({ provider, messages: msg(mode) }));
        answers.push(await http.post('/v1/chat/completions').send({ model: provider, messages: msg(mode) }));
      }
      answers.push(await http.post('/api/chat/fanout').send({ providers: [provider], messages: msg('error500') }));
      answers.push(await http.post('/api/chat/fanout').send({ providers: [provider], messages: msg('ok') }));
      for (const a of answers) seen.push(a.text);
      // The cases did reach the client as they should: errors with upstream text, and answers.
      expect(answers.map((a) => a.status)).toEqual([502, 502, 400, 400, 400, 400, 200, 200, 200, 200]);
      expect(answers[0].body.error.upstream_message).toContain('you sent Bearer ');
      expect(answers[0].body.error.upstream_message.length).toBeLessThanOrEqual(500);
      expect(answers[4].body.error.message.length).toBeLessThanOrEqual(500 + provider.length + 2);
      expect(answers[6].body.content).toContain('you sent Bearer ');
      for (const mode of ['ok', 'midstream']) {
        for (const [path, body] of [
          ['/api/chat', { provider, messages: msg(mode), stream: true }],
          ['/v1/chat/completions', { model: provider, messages: msg(mode), stream: true }],
          ['/api/chat/fanout', { providers: [provider], messages: msg(mode), stream: true }],
        ] as const) {
          const s = await postSse(url + path, body);
          expect(s.status).toBe(200);
          expect(s.text).toContain('hello');
          if (mode === 'midstream') expect(s.text).toContain('you sent');
          seen.push(s.text);
        }
      }
      // The key spelled with JSON escapes (\u0073k-or-…): what the client parses must not hold it either.
      const escapedJson = [
        await http.post('/api/chat').send({ provider, messages: msg('escaped') }),
        await http.post('/v1/chat/completions').send({ model: provider, messages: msg('escaped') }),
        await http.post('/v1/chat/completions').send({ model: provider, messages: msg('escaped400') }),
        await http.post('/api/chat').send({ provider, messages: msg('escaped400') }),
      ];
      expect(escapedJson.map((a) => a.status)).toEqual([200, 200, 400, 400]);
      expect(escapedJson[1].body.choices[0].message.content).toContain('you sent Bearer ');
      for (const a of escapedJson) seen.push(a.text, JSON.stringify(a.body));
      for (const [path, body] of [
        ['/api/chat', { provider, messages: msg('escaped'), stream: true }],
        ['/v1/chat/completions', { model: provider, messages: msg('escaped'), stream: true }],
        ['/api/chat/fanout', { providers: [provider], messages: msg('escaped'), stream: true }],
      ] as const) {
        const s = await postSse(url + path, body);
        expect(s.status).toBe(200);
        expect(s.text).toContain('hello');
        seen.push(s.text);
        for (const e of s.events) if (e.data && e.data !== '[DONE]') seen.push(JSON.stringify(JSON.parse(e.data)));
      }
      // Last: a congested model stays congested for a while. Its upstream_message is metadata.raw.
      const congested = await http.post('/api/chat').send({ provider, messages: msg('congested') });
      expect(congested.status).toBe(429);
      expect(congested.body.error.upstream_message).toContain('temporarily rate-limited upstream');
      seen.push(congested.text, (await http.post('/v1/chat/completions').send({ model: provider, messages: msg('congested') })).text);
      const everything = [...seen, ...logs.lines].join('\n');
      expect(everything).not.toContain(key);
      expect(everything).not.toContain(key.slice(12, -3));
    }
    expect([...seen, ...logs.lines].join('\n')).not.toContain(CANARY);
  } finally {
    await orche.close();
    await up.close();
  }
});
