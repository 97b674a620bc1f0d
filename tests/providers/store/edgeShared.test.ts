/**
 * The edge hold is host-wide (docs/design.md#scopes-and-accounts): with Redis, one instance's edge 429 holds every instance that
 * shares the store, at once, through the `h:edge` gate checked in the atomic pick.
 */
import { keyId } from '../../../providers/keys/keys';
import { eventually } from '../../helpers/child';
import { describeRedis, dropPrefix, REDIS_URL, uniquePrefix } from '../../helpers/redis';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-edge-shared-a-0001';
const B = 'sk-or-v1-edge-shared-b-0002';

describeRedis('the edge hold over one Redis', () => {
  let stacks: Stack[] = [];
  let prefix = '';
  afterEach(async () => {
    await Promise.all(stacks.map((s) => s.close()));
    stacks = [];
    await dropPrefix(prefix);
  });

  test('an edge 429 seen by one instance holds the other before it calls upstream; no key cools', async () => {
    prefix = uniquePrefix('edge');
    const env = { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, REDIS_URL, ORCHE_REDIS_PREFIX: prefix, ORCHE_MAX_WAIT_MS: '0' };
    stacks = [await startStack(env, { keys: [{ key: A }, { key: B }] }), await startStack(env, { keys: [{ key: A }, { key: B }] })];
    const [one, two] = stacks;
    // Both on Redis before the first call (until then each serves from its local state).
    for (const s of stacks) await eventually(async () => ((await s.http.get('/health')).body.store?.ok === true ? true : undefined), 'Redis to connect', 5000);
    one.sim.addRule({ type: 'edge-1015', retryAfterSeconds: 60, times: 1 });
    const first = await one.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(first.status).toBe(429);
    expect(first.body.error.type).toBe('upstream_edge_rate_limited');
    const second = await two.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(second.status).toBe(429);
    expect(second.body.error.type).toBe('upstream_edge_rate_limited');
    expect(two.sim.calls).toHaveLength(0);
    expect((await two.http.get('/status')).body.edge.limited).toBe(true);
    const states = (await two.http.get('/api/key-status/kimi')).body.keys.map((k: { id: string; state: string }) => [k.id, k.state]);
    expect(states).toEqual([[keyId(A), 'active'], [keyId(B), 'active']]);
  });
});
