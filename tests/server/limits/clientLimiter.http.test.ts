/**
 * server/limits/clientLimiter.ts over HTTP (docs/design.md#hostile-connections-and-data): a fan-out costs one
 * request per leg, whatever the spelling of its path.
 */
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-exposure-test-key-00000001';
let stack: Stack;
afterEach(async () => stack?.close());

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
