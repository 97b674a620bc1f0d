/**
 * Upstream faults: each yields its documented status and message, breaks no key state, and the next
 * request succeeds on a healthy key.
 */
import { keyId } from '../../../providers/keys/keys';
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-faults-test-key-0001';
let stack: Stack;
afterEach(async () => stack?.close());

async function oneShot(env: Record<string, string> = {}) {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: K, ORCHE_MAX_ATTEMPTS: '1', ORCHE_REQUEST_TIMEOUT_MS: '150', ...env }, { keys: [{ key: K }] });
}
const chat = () => stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });

test.each([
  ['hang', {}, 504, 'upstream_timeout', /did not answer in time/],
  ['garbage', {}, 502, 'upstream_error', /upstream answered 502/],
  ['truncated', {}, 502, 'upstream_error', /upstream answered 502/],
  ['reset', {}, 502, 'upstream_error', /upstream answered 502/],
  ['error-in-200', { status: 500 }, 502, 'upstream_error', /upstream answered 500/],
] as const)('%s → %i %s, then the next request succeeds and the key is still active', async (type, extra, status, errType, message) => {
  await oneShot();
  stack.sim.addRule({ type, times: 1, ...extra });
  const res = await chat();
  expect(res.status).toBe(status);
  expect(res.body.error).toMatchObject({ code: status, type: errType, provider: 'kimi' });
  expect(res.body.error.message).toMatch(message);
  const next = await chat();
  expect(next.status).toBe(200);
  expect(next.body.key_id).toBe(keyId(K));
  const key = (await stack.http.get('/api/key-status/kimi')).body.keys[0];
  expect(key).toMatchObject({ state: 'active', failures: 1, successes: 1 });
});

test('with a second key, each fault is retried there and the client never sees it', async () => {
  const K2 = 'sk-or-v1-faults-test-key-0002';
  stack = await startStack({ PROVIDER_KIMI_API_KEY: K, PROVIDER_KIMI_BACKUP_KEYS: K2, ORCHE_REQUEST_TIMEOUT_MS: '150' }, { keys: [{ key: K }, { key: K2 }] });
  for (const type of ['hang', 'garbage', 'truncated', 'reset'] as const) {
    stack.sim.addRule({ match: { key: K }, type, times: 1 });
    const res = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi, max_tokens: 5 });
    expect([type, res.status]).toEqual([type, 200]);
  }
});

test('a total deadline per request bounds every attempt and backoff: 504 at ORCHE_REQUEST_DEADLINE_MS', async () => {
  await oneShot({ ORCHE_MAX_ATTEMPTS: '10', ORCHE_REQUEST_TIMEOUT_MS: '100', ORCHE_REQUEST_DEADLINE_MS: '350' });
  stack.sim.addRule({ type: 'hang' });
  const started = Date.now();
  const res = await chat();
  const elapsed = Date.now() - started;
  expect(res.status).toBe(504);
  expect(res.body.error.type).toBe('upstream_timeout');
  expect(elapsed).toBeGreaterThanOrEqual(340);
  expect(elapsed).toBeLessThan(1000);
  expect(stack.sim.calls.length).toBeLessThanOrEqual(4);
});
