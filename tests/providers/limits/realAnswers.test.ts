/**
 * The real OpenRouter answers orche once misread (docs/design.md#the-outcome-table), end to end: a real orche on a
 * real port against the simulator, which answers with those shapes. Each test checks the effect on
 * keys, accounts, models and the host, not just a label.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseConfig } from '../../../config';
import { keyId } from '../../../providers/keys/keys';
import type { FaultRule } from '../../../scripts/simulator';
import { createApp } from '../../../server/app';
import { callsBy, hi, startStack, TEST_ENV, type Stack } from '../../helpers/stack';
import { chunks, contentOfChunks, postSse } from '../../helpers/sse';
import { FIXTURES } from '../../helpers/paths';

const A = 'sk-or-v1-real-answers-a-0001';
const B = 'sk-or-v1-real-answers-b-0002';
const C = 'sk-or-v1-real-answers-c-0003';
const G = 'sk-or-v1-real-answers-g-0004';
const KIMI_FREE = 'moonshotai/kimi-k2:free';
const GLM_FREE = 'z-ai/glm-4.5:free';
// A fixed clock shared by orche and the simulator: 10 s into a minute, a Sunday.
const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);
const NEXT_MIDNIGHT = Date.UTC(2026, 10, 23);

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function keys(s: Stack, provider = 'kimi'): Promise<Record<string, { state: string; reason: string | null; cooldown_until: number | null }>> {
  const body = (await s.http.get(`/api/key-status/${provider}`)).body as { keys: Array<{ id: string; state: string; reason: string | null; cooldown_until: number | null }> };
  return Object.fromEntries(body.keys.map((k) => [k.id, k]));
}

const chat = (s: Stack, provider = 'kimi') => s.http.post('/api/chat').send({ provider, messages: hi });

describe('streams commit at their first chunk with something in it', () => {
  test('an error chunk right after the empty role delta (a 429) still rotates: the client gets one clean stream from the next key', async () => {
    const s = (stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' }, { keys: [{ key: A }, { key: B }] }));
    s.sim.addRule({ match: { key: A }, type: 'stream-open-error', status: 429, times: 1 });
    const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
    expect(read.status).toBe(200);
    expect(s.sim.calls.map((c) => [c.key, c.outcome])).toEqual([[A, 'stream-open-error'], [B, 'ok']]);
    expect(chunks(read.events).some((c) => 'error' in c)).toBe(false);
    expect(contentOfChunks(read.events)).toBe(`Hello from moonshotai/kimi-k2 (sim #2)`);
    expect(read.text.match(/data: \[DONE\]/g)).toHaveLength(1);
    expect(read.headers.get('x-orche-key-id')).toBe(keyId(B));
    expect((await keys(s))[keyId(A)]).toMatchObject({ state: 'cooling' });
  });

  test('a stream that opens with the empty role delta: held until the first content, then relayed to the client exactly as sent', async () => {
    // A local upstream that sends the role delta, then holds the content until the test lets it go:
    // whether the client already has the delta at that moment is order, not speed.
    const roleDelta = JSON.stringify({ id: 'gen-1', object: 'chat.completion.chunk', model: 'moonshotai/kimi-k2', choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] });
    const content = (text: string) => JSON.stringify({ id: 'gen-1', object: 'chat.completion.chunk', model: 'moonshotai/kimi-k2', choices: [{ index: 0, delta: { content: text } }] });
    const clientData: string[] = [];
    let dataSeenAtRelease: number | undefined;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const up = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`: OPENROUTER PROCESSING\n\ndata: ${roleDelta}\n\n`);
        void released.then(() => {
          dataSeenAtRelease = clientData.length;
          res.end(`data: ${content('Hello')}\n\ndata: ${content(' there')}\n\ndata: [DONE]\n\n`);
        });
      });
    });
    await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
    const orche = createApp(parseConfig({ ...TEST_ENV, OPENROUTER_BASE_URL: `http://127.0.0.1:${(up.address() as AddressInfo).port}/api/v1`, PROVIDER_KIMI_API_KEY: A }));
    try {
      const { url } = await orche.listen(0, '127.0.0.1');
      const reading = postSse(`${url}/api/chat`, { provider: 'kimi', messages: hi, stream: true }, (ev) => {
        if (ev.data !== undefined) clientData.push(ev.data);
        return false;
      });
      // The role delta has left the upstream; had orche relayed it, it would be on its way by now.
      setTimeout(release, 100);
      const read = await reading;
      expect(read.status).toBe(200);
      expect(dataSeenAtRelease).toBe(0);
      // Then both, in the order sent and byte for byte as sent.
      expect(clientData).toEqual([roleDelta, content('Hello'), content(' there'), '[DONE]']);
      expect(contentOfChunks(read.events)).toBe('Hello there');
    } finally {
      await orche.close();
      await new Promise<void>((r) => up.close(() => r()));
    }
  });

  test('"temporarily rate-limited upstream" as the message of a chunk after the role delta: the model is congested, no key cools', async () => {
    const s = (stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B }, { keys: [{ key: A }, { key: B }] }));
    s.sim.addRule({ match: { key: A }, type: 'upstream-429-message', times: 1 });
    const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
    expect(read.status).toBe(429);
    expect(JSON.parse(read.text).error).toMatchObject({ type: 'upstream_rate_limited' });
    expect(callsBy(s.sim, A)).toHaveLength(1);
    expect(callsBy(s.sim, B)).toHaveLength(0);
    const ks = await keys(s);
    expect([ks[keyId(A)].state, ks[keyId(B)].state]).toEqual(['active', 'active']);
    const status = (await s.http.get('/status')).body as { providers: Array<{ id: string; congested_until: string | null }> };
    expect(status.providers.find((p) => p.id === 'kimi')!.congested_until).not.toBeNull();
  });
});

describe('per-model daily caps and key caps', () => {
  test('limit_rpd with no reset cools the account+model pair until 00:00 UTC; the account\'s other :free model still serves', async () => {
    let now = T0;
    const s = (stack = await startStack(
      { PROVIDER_KIMI_API_KEY: `team1:${A}`, PROVIDER_KIMI_BACKUP_KEYS: C, PROVIDER_KIMI_MODEL: KIMI_FREE, PROVIDER_KIMI_STRATEGY: 'failover', PROVIDER_GLM45_API_KEY: `team1:${B}`, PROVIDER_GLM45_MODEL: GLM_FREE },
      { keys: [{ key: A, account: 'team1' }, { key: B, account: 'team1' }, { key: C }], now: () => now },
      { now: () => now },
    ));
    s.sim.addRule({ match: { key: A, model: KIMI_FREE }, type: 'model-cap-daily', times: 1 });
    const r = await chat(s);
    expect(r.status).toBe(200);
    expect(r.body.key_id).toBe(keyId(C));
    expect((await keys(s))[keyId(A)]).toMatchObject({ state: 'cooling', cooldown_until: NEXT_MIDNIGHT });
    // The same account on another :free model is not held by kimi's cap.
    const glm = await chat(s, 'glm45');
    expect(glm.status).toBe(200);
    expect(glm.body.key_id).toBe(keyId(B));
    now = T0 + 3_600_000; // an hour later, still the same UTC day: A stays out for kimi
    expect((await chat(s)).body.key_id).toBe(keyId(C));
    expect(callsBy(s.sim, A)).toHaveLength(1);
  });

  test('403 "Key limit exceeded (total limit)" disables the key (key_limit); the request is served by the next key', async () => {
    const s = (stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' }, { keys: [{ key: A }, { key: B }] }));
    s.sim.addRule({ match: { key: A }, type: 'key-limit-403', keyLimit: 'total' });
    const replies = [await chat(s), await chat(s), await chat(s)];
    expect(replies.map((r) => [r.status, r.body.key_id])).toEqual([[200, keyId(B)], [200, keyId(B)], [200, keyId(B)]]);
    expect(callsBy(s.sim, A)).toHaveLength(1);
    expect((await keys(s))[keyId(A)]).toMatchObject({ state: 'disabled', reason: 'key_limit' });
  });

  test('403 "Key limit exceeded (daily limit)" cools the key until 00:00 UTC', async () => {
    const now = T0;
    const s = (stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' }, { keys: [{ key: A }, { key: B }], now: () => now }, { now: () => now }));
    s.sim.addRule({ match: { key: A }, type: 'key-limit-403', keyLimit: 'daily', times: 1 });
    const r = await chat(s);
    expect([r.status, r.body.key_id]).toEqual([200, keyId(B)]);
    expect((await keys(s))[keyId(A)]).toMatchObject({ state: 'cooling', cooldown_until: NEXT_MIDNIGHT });
  });
});

describe('the edge limits the host, not a key', () => {
  test('a 429 "error code: 1015": no key cools, every provider waits until Retry-After, /status and /health say so', async () => {
    let now = T0;
    const s = (stack = await startStack(
      { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_FALLBACK: 'glm45', PROVIDER_GLM45_API_KEY: G, ORCHE_MAX_WAIT_MS: '0' },
      { keys: [{ key: A }, { key: B }, { key: G }], now: () => now },
      { now: () => now },
    ));
    s.sim.addRule({ type: 'edge-1015', retryAfterSeconds: 30, times: 1 });
    const r = await chat(s);
    expect(r.status).toBe(429);
    expect(r.body.error).toMatchObject({ type: 'upstream_edge_rate_limited', retry_after_ms: 30_000 });
    expect(r.headers['retry-after']).toBe('30');
    // No other key and no fallback provider was tried: they would meet the same edge.
    expect(s.sim.calls).toHaveLength(1);
    // Another provider is held too, without a call upstream.
    const glm = await chat(s, 'glm45');
    expect(glm.status).toBe(429);
    expect(glm.body.error.type).toBe('upstream_edge_rate_limited');
    expect(s.sim.calls).toHaveLength(1);
    for (const [provider, ks] of [['kimi', [A, B]], ['glm45', [G]]] as const) {
      const states = await keys(s, provider);
      for (const k of ks) expect(states[keyId(k)].state).toBe('active');
    }
    const status = (await s.http.get('/status')).body;
    expect(status.edge).toEqual({ limited: true, until: new Date(T0 + 30_000).toISOString(), remaining_ms: 30_000 });
    expect(status.providers.every((p: { available: boolean }) => !p.available)).toBe(true);
    const health = (await s.http.get('/health')).body;
    expect(health).toMatchObject({ status: 'degraded', edge_limited_until: new Date(T0 + 30_000).toISOString() });
    now = T0 + 30_000;
    expect((await chat(s)).status).toBe(200);
    expect((await s.http.get('/status')).body.edge).toEqual({ limited: false, until: null, remaining_ms: 0 });
  });
});

describe('a 404 that says this model has no endpoint for the request (model_unavailable)', () => {
  const Q = 'sk-or-v1-real-answers-q-0005';
  const KIMI = 'moonshotai/kimi-k2';
  // tests/fixtures/openrouter/404-no-endpoints-tool-use.json (Routstr/routstr-core#554, 2026-06-17): the message as published.
  const toolUse = (JSON.parse(readFileSync(join(FIXTURES, 'openrouter', '404-no-endpoints-tool-use.json'), 'utf8')) as { body: { error: { message: string } } }).body.error.message;
  const cases: Array<[string, FaultRule]> = [
    ['the model is gone: "No endpoints found for <model>."', { match: { model: KIMI }, type: 'model-gone' }],
    ['no endpoint of the model supports the request\'s tools', { match: { model: KIMI }, type: 'status', status: 404, message: toolUse }],
  ];

  test.each(cases)('%s: goes to the fallback provider; no key cools', async (_name, rule) => {
    const s = (stack = await startStack(
      { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover', PROVIDER_KIMI_FALLBACK: 'qwen3', PROVIDER_QWEN3_API_KEY: Q },
      { keys: [{ key: A }, { key: B }, { key: Q }] },
    ));
    s.sim.addRule(rule);
    const r = await chat(s);
    expect([r.status, r.body.provider, r.body.key_id]).toEqual([200, 'qwen3', keyId(Q)]);
    // One call found it out: the model's other key was not tried.
    expect(s.sim.calls.map((c) => [c.key, c.status])).toEqual([[A, 404], [Q, 200]]);
    const ks = await keys(s);
    expect([ks[keyId(A)], ks[keyId(B)]].map((k) => k.state)).toEqual(['active', 'active']);
    // A stream falls back the same way, before its first byte.
    const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
    expect(read.status).toBe(200);
    expect(read.headers.get('x-orche-key-id')).toBe(keyId(Q));
    expect(chunks(read.events).some((c) => 'error' in c)).toBe(false);
  });

  test.each(cases)('%s, no fallback configured: the 404 goes back to the client as is; no key cools', async (_name, rule) => {
    const s = (stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' }, { keys: [{ key: A }, { key: B }] }));
    s.sim.addRule(rule);
    const r = await chat(s);
    expect(r.status).toBe(404);
    expect(r.body.error).toMatchObject({ type: 'upstream_rejected', provider: 'kimi' });
    expect(r.body.error.message).toContain(rule.type === 'model-gone' ? `No endpoints found for ${KIMI}.` : 'No endpoints found that support tool use.');
    expect(s.sim.calls.map((c) => [c.key, c.status])).toEqual([[A, 404]]);
    const ks = await keys(s);
    expect([ks[keyId(A)], ks[keyId(B)]].map((k) => k.state)).toEqual(['active', 'active']);
  });
});

describe('a 402 for the account\'s credits', () => {
  test('disables every key of that account at once, in every provider; another account serves', async () => {
    const s = (stack = await startStack(
      { PROVIDER_KIMI_API_KEY: `team1:${A}`, PROVIDER_KIMI_BACKUP_KEYS: `team1:${B},${C}`, PROVIDER_KIMI_STRATEGY: 'failover', PROVIDER_GLM45_API_KEY: `team1:${G}` },
      { keys: [{ key: A, account: 'team1' }, { key: B, account: 'team1' }, { key: C }, { key: G, account: 'team1' }] },
    ));
    s.sim.addRule({ match: { account: 'team1' }, type: 'no-credits' });
    const r = await chat(s);
    expect([r.status, r.body.key_id]).toEqual([200, keyId(C)]);
    // One call found out for the whole account: B was never tried.
    expect(s.sim.calls.map((c) => [c.key, c.status])).toEqual([[A, 402], [C, 200]]);
    const kimi = await keys(s);
    expect([kimi[keyId(A)], kimi[keyId(B)], kimi[keyId(C)]].map((k) => [k.state, k.reason])).toEqual([
      ['disabled', 'insufficient_credits'],
      ['disabled', 'insufficient_credits'],
      ['active', null],
    ]);
    expect((await keys(s, 'glm45'))[keyId(G)]).toMatchObject({ state: 'disabled', reason: 'insufficient_credits' });
    const glm = await chat(s, 'glm45');
    expect(glm.status).toBe(503);
    expect(callsBy(s.sim, G)).toHaveLength(0);
  });
});

describe('error forms inside a 200 body (docs/design.md#reading-an-answer)', () => {
  test.each([
    ['http_status', 'cooling'],
    ['nested', 'cooling'],
  ] as const)('a 429 carried as %s cools the key and the request moves to the next key', async (form, state) => {
    const s = (stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' }, { keys: [{ key: A }, { key: B }] }));
    s.sim.addRule({ match: { key: A }, type: 'error-form', form, status: 429, times: 1 });
    const r = await chat(s);
    expect([r.status, r.body.key_id, r.body.attempts]).toEqual([200, keyId(B), 2]);
    expect((await keys(s))[keyId(A)].state).toBe(state);
  });

  test.each(['bare', 'finish-error'] as const)('%s: a failure without a status is retried on the next key, and no key cools', async (form) => {
    const s = (stack = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover' }, { keys: [{ key: A }, { key: B }] }));
    s.sim.addRule({ match: { key: A }, type: 'error-form', form, times: 1 });
    const r = await chat(s);
    expect([r.status, r.body.key_id]).toEqual([200, keyId(B)]);
    const ks = await keys(s);
    expect([ks[keyId(A)].state, ks[keyId(B)].state]).toEqual(['active', 'active']);
    expect(callsBy(s.sim, A)).toHaveLength(1);
  });
});
