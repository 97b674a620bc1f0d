/**
 * Blame only on evidence (docs/design.md#blame-on-evidence), over HTTP against the simulator, on the memory,
 * snapshot and Redis stores: an answer about the request's size, a provider's own failure, or a 401
 * that GET /key contradicts changes no key or account; the next requests are served as before.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Env } from '../../../config';
import { keyId } from '../../../providers/keys/keys';
import { RedisStore } from '../../../providers/store/redis';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { chunks, postSse } from '../../helpers/sse';
import { callsBy, hi, startStack, type Stack } from '../../helpers/stack';

// Two keys of one account (team1) and one of another: an account-wide disable would take A and B.
const A = 'sk-or-v1-evidence-key-a-0001';
const B = 'sk-or-v1-evidence-key-b-0002';
const C = 'sk-or-v1-evidence-key-c-0003';
const G = 'sk-or-v1-evidence-key-g-0004';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function start(storeEnv: Env, extra: Env = {}): Promise<Stack> {
  const s = await startStack(
    { PROVIDER_KIMI_API_KEY: `team1:${A}`, PROVIDER_KIMI_BACKUP_KEYS: `team1:${B},${C}`, PROVIDER_KIMI_STRATEGY: 'failover', ORCHE_MAX_WAIT_MS: '0', ...storeEnv, ...extra },
    { keys: [{ key: A, account: 'team1' }, { key: B, account: 'team1' }, { key: C }, { key: G }] },
  );
  // A Redis store must be connected before the first call: until then orche serves from local state.
  const store = s.orche.ctx.pool.store;
  if (store instanceof RedisStore) expect(await store.connected()).toBe(true);
  return s;
}

async function states(s: Stack, provider = 'kimi'): Promise<string[]> {
  const body = (await s.http.get(`/api/key-status/${provider}`)).body as { keys: Array<{ id: string; state: string }> };
  return body.keys.map((k) => `${k.id === keyId(A) ? 'A' : k.id === keyId(B) ? 'B' : k.id === keyId(C) ? 'C' : k.id}:${k.state}`);
}

const ALL_ACTIVE = ['A:active', 'B:active', 'C:active'];
const chat = (s: Stack, extra: Record<string, unknown> = {}) => s.http.post('/api/chat').send({ provider: 'kimi', messages: hi, ...extra });

function evidenceRules(storeEnv: () => Env): void {
  test('one oversized prompt gets a 4xx naming the limit; every later request is served; no key or account is disabled', async () => {
    const s = (stack = await start(storeEnv()));
    // The account's credits pay for 1000 prompt tokens: OpenRouter's "Prompt tokens limit exceeded: X > Y".
    s.sim.addRule({ type: 'request-too-large', promptTokenLimit: 1000 });
    const big = await chat(s, { messages: [{ role: 'user', content: 'x'.repeat(8000) }] });
    expect(big.status).toBe(402);
    expect(big.body.error).toMatchObject({ code: 402, type: 'request_exceeds_limit', provider: 'kimi', limit: { name: 'prompt_tokens', requested: 2000, allowed: 1000 } });
    expect(big.body.error.message).toMatch(/prompt_tokens \(2000 > 1000\)/);
    // One upstream call: no other key is spent to learn what the first answer said.
    expect(s.sim.calls).toHaveLength(1);
    const later = [await chat(s), await chat(s), await chat(s), await s.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi })];
    expect(later.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(await states(s)).toEqual(ALL_ACTIVE);
  });

  test('one oversized max_tokens gets a 4xx naming the limit; every later request is served; no key is disabled', async () => {
    const s = (stack = await start(storeEnv()));
    // What the key's own limit has left pays for 9577 tokens (cline/cline#940's answer).
    s.sim.addRule({ type: 'request-too-large', maxTokensLimit: 9577 });
    const big = await chat(s, { max_tokens: 100000 });
    expect(big.status).toBe(402);
    expect(big.body.error).toMatchObject({ type: 'request_exceeds_limit', limit: { name: 'max_tokens', requested: 100000, allowed: 9577 } });
    expect(s.sim.calls).toHaveLength(1);
    const later = [await chat(s), await chat(s, { max_tokens: 500 }), await chat(s)];
    expect(later.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(await states(s)).toEqual(ALL_ACTIVE);
  });

  test('a 401 for a key GET /key accepts disables nothing: the request moves on to the next key; the key keeps serving', async () => {
    const s = (stack = await start(storeEnv()));
    // Chat answers "401 User not found." for a key that GET /key accepts (anomalyco/opencode#2245).
    s.sim.addRule({ match: { key: A }, type: 'invalid-key', times: 1 });
    const r = await chat(s);
    expect(r.status).toBe(200);
    expect(r.body.key_id).toBe(keyId(B));
    expect(await states(s)).toEqual(ALL_ACTIVE);
    // The primary serves again (failover goes back to it).
    expect((await chat(s)).body.key_id).toBe(keyId(A));
  });

  test('a 401 GET /key confirms disables the key (and only it)', async () => {
    const s = (stack = await start(storeEnv()));
    s.sim.updateKey(A, { revoked: true });
    const r = await chat(s);
    expect([r.status, r.body.key_id]).toEqual([200, keyId(B)]);
    expect(await states(s)).toEqual(['A:disabled', 'B:active', 'C:active']);
  });

  test('a 401 and a 403 relayed from a provider ("Provider returned error", not BYOK) change no key: retried as a 5xx', async () => {
    const s = (stack = await start(storeEnv()));
    // Bodies as published: a provider's auth failure (OpenRouterTeam/ai-sdk-provider#24), a provider's region refusal (crmne/ruby_llm#431).
    const raw401 = '{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}';
    s.sim.addRule({ match: { key: A }, type: 'status', status: 401, message: 'Provider returned error', metadata: { raw: raw401, provider_name: 'Anthropic', is_byok: false }, times: 1 });
    const first = await chat(s);
    expect([first.status, first.body.key_id]).toEqual([200, keyId(B)]);
    const raw403 = '{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported"}}';
    s.sim.addRule({ match: { key: A }, type: 'status', status: 403, message: 'Provider returned error', metadata: { raw: raw403, provider_name: 'OpenAI' }, times: 1 });
    const second = await chat(s);
    expect([second.status, second.body.key_id]).toEqual([200, keyId(B)]);
    expect(await states(s)).toEqual(ALL_ACTIVE);
    expect((await chat(s)).body.key_id).toBe(keyId(A));
  });

  test('a 429 naming a provider\'s worker limit holds the model (congestion), cools no key, and the fallback serves', async () => {
    const s = (stack = await start(storeEnv(), { PROVIDER_KIMI_FALLBACK: 'glm45', PROVIDER_GLM45_API_KEY: G }));
    s.sim.addRule({ match: { key: A }, type: 'status', status: 429, message: 'Upstream error from Nvidia: ResourceExhausted: Worker local total request limit reached (16/16)', times: 1 });
    const r = await chat(s);
    expect([r.status, r.body.provider, r.body.key_id]).toEqual([200, 'glm45', keyId(G)]);
    expect(await states(s)).toEqual(ALL_ACTIVE);
    const status = (await s.http.get('/status')).body as { providers: Array<{ id: string; congested_until: string | null }> };
    expect(status.providers.find((p) => p.id === 'kimi')!.congested_until).not.toBeNull();
    expect(callsBy(s.sim, A)).toHaveLength(1);
  });

  test('a streaming request whose 401 GET /key contradicts is served by the next key; nothing is disabled', async () => {
    const s = (stack = await start(storeEnv()));
    s.sim.addRule({ match: { key: A }, type: 'invalid-key', times: 1 });
    const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
    expect(read.status).toBe(200);
    expect(read.headers.get('x-orche-key-id')).toBe(keyId(B));
    expect(chunks(read.events).some((c) => 'error' in c)).toBe(false);
    expect(await states(s)).toEqual(ALL_ACTIVE);
  });
}

describe('blame only on evidence: memory store', () => evidenceRules(() => ({})));
describe('blame only on evidence: snapshot store', () => evidenceRules(() => ({ ORCHE_STATE_FILE: join(mkdtempSync(join(tmpdir(), 'orche-evidence-')), 'state.json') })));
describeRedis('blame only on evidence: Redis store', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropPrefix(p);
  });
  evidenceRules(() => {
    const prefix = uniquePrefix('evidence');
    prefixes.push(prefix);
    return { REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
  });
});
