/**
 * Client routing is the operator's (docs/design.md#client-routing): a client's `models`, `route`, `plugins`
 * and `provider` are refused on every chat route unless ORCHE_CLIENT_ROUTING=allow; the operator's
 * PROVIDER_X_ROUTING goes upstream as `provider`; with client routing allowed, what comes back for a
 * request carrying it changes no shared state (memory, snapshot and Redis).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type Env, parseConfig } from '../../../config';
import { keyId } from '../../../providers/keys/keys';
import { RedisStore } from '../../../providers/store/redis';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { chunks, postSse } from '../../helpers/sse';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-routing-key-a-0001';
const B = 'sk-or-v1-routing-key-b-0002';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function start(env: Env): Promise<Stack> {
  const s = await startStack({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover', ORCHE_MAX_WAIT_MS: '0', ...env }, { keys: [{ key: A }, { key: B }] });
  const store = s.orche.ctx.pool.store;
  if (store instanceof RedisStore) expect(await store.connected()).toBe(true);
  return s;
}

// What a client might send for each field (OpenRouter's documented forms).
const FIELDS: Record<string, unknown> = {
  models: ['openai/o1-pro'],
  route: 'fallback',
  plugins: [{ id: 'web' }],
  provider: { only: ['SimUpstream'] },
};

const ROUTES: Array<[string, (field: string) => Record<string, unknown>]> = [
  ['/api/chat', (f) => ({ provider: 'kimi', messages: hi, [f]: FIELDS[f] })],
  ['/api/chat/fanout', (f) => ({ providers: ['kimi'], messages: hi, [f]: FIELDS[f] })],
  ['/v1/chat/completions', (f) => ({ model: 'kimi', messages: hi, [f]: FIELDS[f] })],
];

describe('by default a client\'s routing fields are refused on every chat route', () => {
  // `provider` on /api/chat is orche's own field (the provider ID): that route's case is the next test.
  const cases = ROUTES.flatMap(([route, body]) => Object.keys(FIELDS).map((f) => [route, f, body] as const)).filter(([route, f]) => !(route === '/api/chat' && f === 'provider'));
  test.each(cases)('%s with "%s" → 400 routing_field_not_allowed naming it', async (route, field, body) => {
    const s = (stack = await start({}));
    const sent = body(field);
    const r = await s.http.post(route).send(sent);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 400, type: 'routing_field_not_allowed', field });
    expect(r.body.error.message).toContain(`"${field}"`);
    // Streaming asks are refused the same way, before anything goes upstream.
    const streamed = await s.http.post(route).send({ ...sent, stream: true });
    expect(streamed.status).toBe(400);
    expect(s.sim.calls).toHaveLength(0);
  });

  test('/api/chat\'s own `provider` (a provider ID) is not a routing object; an OpenRouter provider object there is refused', async () => {
    const s = (stack = await start({}));
    expect((await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
    const r = await s.http.post('/api/chat').send({ provider: { only: ['SimUpstream'] }, messages: hi });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ type: 'routing_field_not_allowed', field: 'provider' });
  });
});

describe('PROVIDER_X_ROUTING: the operator\'s provider preferences go upstream as `provider`', () => {
  const routing = { order: ['DeepInfra', 'Together'], allow_fallbacks: false };

  test('on every chat route, streaming too; a provider without it sends none', async () => {
    const s = (stack = await start({ PROVIDER_KIMI_ROUTING: JSON.stringify(routing), PROVIDER_GLM45_API_KEY: B }));
    await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi }).expect(200);
    await s.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi }).expect(200);
    await s.http.post('/api/chat/fanout').send({ providers: ['kimi', 'glm45'], messages: hi }).expect(200);
    const read = await postSse(`${s.url}/api/chat`, { provider: 'kimi', messages: hi, stream: true });
    expect(read.status).toBe(200);
    expect(chunks(read.events).length).toBeGreaterThan(0);
    const sent = s.sim.calls.map((c) => [c.model, (c.body as { provider?: unknown }).provider ?? null]);
    expect(sent).toEqual(expect.arrayContaining([['moonshotai/kimi-k2', routing], ['z-ai/glm-4.5', null]]));
    expect(sent.filter(([m]) => m === 'moonshotai/kimi-k2').every(([, p]) => JSON.stringify(p) === JSON.stringify(routing))).toBe(true);
    expect(sent).toHaveLength(5);
  });

  test.each([
    ['not JSON', '{order:[DeepInfra]}', /not valid JSON/],
    ['not an object', '["DeepInfra"]', /value|expected object/i],
    ['an unknown field', '{"Only":["DeepInfra"]}', /unknown field\(s\) Only/],
    ['a wrong type', '{"only":"DeepInfra"}', /only/],
  ])('a PROVIDER_X_ROUTING that is %s stops start-up naming the variable', (_what, value, detail) => {
    const parse = () => parseConfig({ PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_ROUTING: value });
    expect(parse).toThrow(ConfigError);
    expect(parse).toThrow(/^PROVIDER_KIMI_ROUTING: expected a JSON object of OpenRouter provider preferences/);
    expect(parse).toThrow(detail);
  });

  test('ORCHE_CLIENT_ROUTING takes allow or refuse only', () => {
    expect(() => parseConfig({ PROVIDER_KIMI_API_KEY: A, ORCHE_CLIENT_ROUTING: 'yes' })).toThrow(/^ORCHE_CLIENT_ROUTING: expected allow or refuse/);
    expect(parseConfig({ PROVIDER_KIMI_API_KEY: A, ORCHE_CLIENT_ROUTING: 'Allow' }).clientRouting).toBe('allow');
    expect(parseConfig({ PROVIDER_KIMI_API_KEY: A }).clientRouting).toBe('refuse');
  });
});

async function keyStates(s: Stack): Promise<string[]> {
  const body = (await s.http.get('/api/key-status/kimi')).body as { keys: Array<{ id: string; state: string }> };
  return body.keys.map((k) => `${k.id === keyId(A) ? 'A' : 'B'}:${k.state}`);
}

async function congestedUntil(s: Stack): Promise<string | null> {
  const status = (await s.http.get('/status')).body as { providers: Array<{ id: string; congested_until: string | null }> };
  return status.providers.find((p) => p.id === 'kimi')!.congested_until;
}

function allowedRoutingIsTheRequests(storeEnv: () => Env): void {
  test('the fields go upstream as sent; the client\'s `provider` replaces the operator\'s', async () => {
    const s = (stack = await start({ ...storeEnv(), ORCHE_CLIENT_ROUTING: 'allow', PROVIDER_KIMI_ROUTING: '{"order":["DeepInfra"]}' }));
    const r = await s.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi, ...FIELDS });
    expect(r.status).toBe(200);
    const chat = await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi, plugins: FIELDS.plugins });
    expect(chat.status).toBe(200);
    const [first, second] = s.sim.calls.map((c) => c.body as Record<string, unknown>);
    expect(first).toMatchObject({ models: FIELDS.models, route: 'fallback', plugins: FIELDS.plugins, provider: FIELDS.provider, model: 'moonshotai/kimi-k2' });
    expect(second).toMatchObject({ plugins: FIELDS.plugins, provider: { order: ['DeepInfra'] }, model: 'moonshotai/kimi-k2' });
  });

  test('a congested provider chosen by one client holds no model for the others', async () => {
    const s = (stack = await start({ ...storeEnv(), ORCHE_CLIENT_ROUTING: 'allow' }));
    // The provider the client names is out of capacity (OpenRouter's "temporarily rate-limited upstream").
    s.sim.addRule({ match: { provider: 'Congested' }, type: 'upstream-429', retryAfterSeconds: 30 });
    const chosen = await s.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi, provider: { only: ['Congested'] } });
    expect(chosen.status).toBe(429);
    expect(await congestedUntil(s)).toBeNull();
    expect(await keyStates(s)).toEqual(['A:active', 'B:active']);
    // Everyone else is served at once, by the primary.
    const others = [await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi }), await s.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi })];
    expect(others.map((r) => [r.status, r.headers['x-orche-key-id']])).toEqual([[200, keyId(A)], [200, keyId(A)]]);
  });

  test('a failing provider chosen by one client cools and disables no key for the others', async () => {
    const s = (stack = await start({ ...storeEnv(), ORCHE_CLIENT_ROUTING: 'allow' }));
    // The chosen provider rate-limits every call (OpenRouter's generic 429) or refuses the key's cap.
    s.sim.addRule({ match: { provider: 'Failing' }, type: 'generic-429', retryAfterSeconds: 600, times: 1 });
    s.sim.addRule({ match: { provider: 'Failing' }, type: 'key-limit-403', keyLimit: 'total' });
    const routed = await s.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi, provider: { only: ['Failing'] } });
    expect(routed.status).toBeGreaterThanOrEqual(400);
    const routedCalls = s.sim.calls.filter((c) => (c.body as { provider?: unknown }).provider !== undefined);
    expect(routedCalls.map((c) => c.status)).toEqual([429, 403, 403, 403]);
    expect(await keyStates(s)).toEqual(['A:active', 'B:active']);
    expect(await congestedUntil(s)).toBeNull();
    const others = [await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi }), await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi })];
    expect(others.map((r) => [r.status, r.body.key_id])).toEqual([[200, keyId(A)], [200, keyId(A)]]);
  });
}

describe('client routing allowed: memory store', () => allowedRoutingIsTheRequests(() => ({})));
describe('client routing allowed: snapshot store', () => allowedRoutingIsTheRequests(() => ({ ORCHE_STATE_FILE: join(mkdtempSync(join(tmpdir(), 'orche-routing-')), 'state.json') })));
describeRedis('client routing allowed: Redis store', () => {
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) await dropPrefix(p);
  });
  allowedRoutingIsTheRequests(() => {
    const prefix = uniquePrefix('routing');
    prefixes.push(prefix);
    return { REDIS_URL, ORCHE_REDIS_PREFIX: prefix };
  });
});
