/**
 * Cost (docs/design.md#what-the-frontends-get): `usage.cost` of every answer that carries it — JSON, the last chunk of a
 * stream, each fan-out leg — is recorded per provider, key, client and end user, and shown by
 * /api/usage (minute, hour, day) and /metrics (`orche_cost_usd_total`). Over HTTP against the
 * simulator, whose usage carries `cost` as OpenRouter's does (scripts/simulator/responses.ts).
 */
import { createHash } from 'node:crypto';
import { keyId } from '../../../providers/keys/keys';
import { endUserHash } from '../../../server/limits/endUsers';
import { chunks, postSse } from '../../helpers/sse';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-cost-key-a-0001';
const B = 'sk-or-v1-cost-key-b-0002';
const T0 = Date.UTC(2026, 10, 22, 12, 30, 10);
const MIN = 60_000;
const ONE = 'client-token-one-cost-1';
const TWO = 'client-token-two-cost-2';
const ADMIN = 'admin-token-for-cost-tests';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

let now = T0;
async function kimiStack(env: Record<string, string> = {}): Promise<Stack> {
  now = T0;
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, PROVIDER_KIMI_STRATEGY: 'failover', ...env },
    { keys: [{ key: A }, { key: B }], now: () => now },
    { now: () => now },
  );
  return stack;
}

/** The value of one sample, labels given in any order; undefined when the series does not exist. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(labels).length === Object.keys(got).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

type Entry = { user?: string; client?: string; cost_usd: { minute: number; hour: number; day: number } };

test('JSON answers, a stream\'s last chunk and fan-out legs (JSON and streaming): their cost shows per provider, key, client and end user, and in /metrics', async () => {
  const s = await kimiStack();
  const alice = await s.http.post('/api/chat').set('X-Orche-User', 'alice').send({ provider: 'kimi', messages: hi });
  const bob = await s.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi, user: 'bob' });
  const stream = await postSse(`${s.url}/v1/chat/completions`, { model: 'kimi', messages: hi, stream: true, stream_options: { include_usage: true } });
  const fanout = await s.http.post('/api/chat/fanout').send({ providers: ['kimi'], messages: hi });
  const fanoutStream = await postSse(`${s.url}/api/chat/fanout`, { providers: ['kimi'], messages: hi, stream: true });
  const streamUsage = chunks(stream.events).find((c) => c.usage)!.usage as { cost: number };
  const done = JSON.parse(fanoutStream.events.find((e) => e.event === 'done')!.data!) as { usage: { cost: number } };
  const costs = { alice: alice.body.usage.cost, bob: bob.body.usage.cost, stream: streamUsage.cost, fanout: fanout.body.results[0].usage.cost, fanoutStream: done.usage.cost };
  for (const c of Object.values(costs)) expect(c).toBeGreaterThan(0); // the simulator prices moonshotai/kimi-k2
  const total = costs.alice + costs.bob + costs.stream + costs.fanout + costs.fanoutStream;

  const usage = (await s.http.get('/api/usage?provider=kimi')).body;
  const [kimi] = usage.providers;
  expect(kimi.minute.cost_usd).toBeCloseTo(total, 12);
  expect(kimi.day.cost_usd).toBeCloseTo(total, 12);
  const byKey = Object.fromEntries(kimi.keys.map((k: { id: string; minute: { cost_usd: number } }) => [k.id, k.minute.cost_usd]));
  expect(byKey[keyId(A)]).toBeCloseTo(total, 12); // failover: the primary served every call
  expect(byKey[keyId(B)]).toBe(0);

  // This test's requests all come from one address: one client, shown hashed; the end users it named.
  expect(usage.clients).toHaveLength(1);
  expect(usage.clients[0].client).toMatch(/^ip:[0-9a-f]{12}$/);
  expect(usage.clients[0].cost_usd.minute).toBeCloseTo(total, 12);
  const users = Object.fromEntries((usage.end_users.users as Entry[]).map((u) => [u.user, u.cost_usd]));
  // End users are listed by the hash of their name (docs/design.md#what-the-frontends-get), never by the name.
  expect(users.alice).toBeUndefined();
  expect(users[endUserHash('alice')].minute).toBeCloseTo(costs.alice, 12);
  expect(users[endUserHash('bob')].minute).toBeCloseTo(costs.bob, 12);

  const metrics = (await s.http.get('/metrics')).text;
  expect(sample(metrics, 'orche_cost_usd_total', { provider: 'kimi', key_id: keyId(A) })).toBeCloseTo(total, 12);
  expect(sample(metrics, 'orche_cost_usd_total', { provider: 'kimi', key_id: keyId(B) })).toBeUndefined();

  // An hour and a minute later the cost has left the minute and the hour, not the day.
  now = T0 + 61 * MIN;
  const later = (await s.http.get('/api/usage?provider=kimi')).body;
  expect([later.providers[0].minute.cost_usd, later.providers[0].hour.cost_usd]).toEqual([0, 0]);
  expect(later.providers[0].day.cost_usd).toBeCloseTo(total, 12);
  expect(later.clients[0].cost_usd).toMatchObject({ minute: 0, hour: 0 });
});

test('an answer without cost (a :free model) adds none; /api/usage and /metrics stay at zero', async () => {
  const s = await kimiStack({ PROVIDER_KIMI_MODEL: 'moonshotai/kimi-k2:free' });
  const res = await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect(res.status).toBe(200);
  expect(res.body.usage.cost).toBe(0);
  const usage = (await s.http.get('/api/usage?provider=kimi')).body;
  expect(usage.providers[0].minute).toMatchObject({ calls: 1, cost_usd: 0 });
  expect(usage.clients).toEqual([]);
  expect(sample((await s.http.get('/metrics')).text, 'orche_cost_usd_total', { provider: 'kimi', key_id: keyId(A) })).toBeUndefined();
});

test('each client token sees its own cost in /api/usage; the admin token sees every client\'s', async () => {
  const s = await kimiStack({ ORCHE_CLIENT_TOKENS: `${ONE},${TWO}`, ORCHE_ADMIN_TOKEN: ADMIN });
  const one = await s.http.post('/api/chat').set('Authorization', `Bearer ${ONE}`).send({ provider: 'kimi', messages: hi });
  const two = await s.http.post('/api/chat').set('Authorization', `Bearer ${TWO}`).send({ provider: 'kimi', messages: hi });
  await s.http.post('/api/chat').set('Authorization', `Bearer ${TWO}`).send({ provider: 'kimi', messages: hi });
  const shown = (token: string) => `t:${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;
  const clientsFor = async (auth?: string) => {
    const req = s.http.get('/api/usage');
    return ((await (auth ? req.set('Authorization', `Bearer ${auth}`) : req)).body.clients as Entry[]);
  };
  const mine = await clientsFor(ONE);
  expect(mine.map((c) => c.client)).toEqual([shown(ONE)]);
  expect(mine[0].cost_usd.minute).toBeCloseTo(one.body.usage.cost, 12);
  expect((await clientsFor(TWO)).map((c) => c.client)).toEqual([shown(TWO)]);
  const all = await clientsFor(ADMIN);
  expect(all.map((c) => c.client)).toEqual([shown(TWO), shown(ONE)]); // most recently charged first
  expect(all[0].cost_usd.minute).toBeCloseTo(2 * two.body.usage.cost, 12);
  expect(await clientsFor()).toEqual([]); // no token: an address that spent nothing
  const text = JSON.stringify(await clientsFor(ADMIN));
  for (const secret of [ONE, TWO, ADMIN]) expect(text).not.toContain(secret);
});
