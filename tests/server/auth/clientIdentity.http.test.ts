/**
 * server/auth/clientIdentity.ts over HTTP (docs/design.md#hostile-connections-and-data): who a client is for its limits —
 * never an invented token, never an address a client wrote itself.
 */
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-exposure-test-key-00000001';
let stack: Stack;
afterEach(async () => stack?.close());
const start = (env: Record<string, string> = {}) => startStack({ PROVIDER_KIMI_API_KEY: K, ...env }, { keys: [{ key: K }] }).then((s) => (stack = s));
const chatBody = { provider: 'kimi', messages: hi };

describe('client identity', () => {
  test('an invented Bearer token per request never opens its own bucket: the address is the identity', async () => {
    await start({ ORCHE_CLIENT_RPM: '5' });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await stack.http.post('/api/chat').set('Authorization', `Bearer invented-${i}-${Math.random()}`).send(chatBody)).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(stack.sim.calls).toHaveLength(5);
  });

  test('X-Forwarded-For from loopback is ignored by default (ORCHE_TRUST_PROXY=false): a spoofed address per request is still one client', async () => {
    await start({ ORCHE_CLIENT_RPM: '3' });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await stack.http.post('/api/chat').set('X-Forwarded-For', `203.0.113.${i + 1}`).send(chatBody)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  test('ORCHE_TRUST_PROXY=1: the address X-Forwarded-For names is the client, one bucket each', async () => {
    await start({ ORCHE_CLIENT_RPM: '2', ORCHE_TRUST_PROXY: '1' });
    const as = (ip: string) => stack.http.post('/api/chat').set('X-Forwarded-For', ip).send(chatBody);
    expect([(await as('203.0.113.1')).status, (await as('203.0.113.1')).status, (await as('203.0.113.1')).status]).toEqual([200, 200, 429]);
    expect([(await as('203.0.113.2')).status, (await as('203.0.113.2')).status]).toEqual([200, 200]);
    // Only the hop next to orche counts: an address the client put further left is not trusted.
    expect((await as('198.51.100.7, 203.0.113.1')).status).toBe(429);
  });
});
