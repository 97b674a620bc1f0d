/**
 * Webhook alerts against a local receiver: one alert when a provider runs out of usable keys,
 * one when it recovers, never more than one per kind and interval, and never in a request's way.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { keyId } from '../../../providers/keys/keys';
import { eventually } from '../../helpers/child';
import { hi, startStack, type Stack } from '../../helpers/stack';

const A = 'sk-or-v1-alerts-key-a-0001';
const B = 'sk-or-v1-alerts-key-b-0002';
const C = 'sk-or-v1-alerts-key-c-0003';

interface Receiver {
  url: string;
  alerts: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A webhook receiver; `answer` decides what it does with each POST. */
async function startReceiver(answer: (res: ServerResponse) => void = (res) => res.writeHead(204).end()): Promise<Receiver> {
  const alerts: Array<Record<string, unknown>> = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      alerts.push(JSON.parse(raw));
      answer(res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    alerts,
    close: () => new Promise((r) => {
      server.close(() => r());
      server.closeAllConnections();
    }),
  };
}

let stack: Stack | undefined;
let receiver: Receiver | undefined;
afterEach(async () => {
  await stack?.close();
  await receiver?.close();
  stack = receiver = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const kimi = { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}`, ORCHE_MAX_WAIT_MS: '0' };

test('exhausting every key sends exactly one alert; the reset brings exactly one recovery alert', async () => {
  receiver = await startReceiver();
  stack = await startStack({ ...kimi, ORCHE_ALERT_WEBHOOK: receiver.url, ORCHE_ALERT_INTERVAL_MS: '60000' }, { keys: [{ key: A }, { key: B }, { key: C }] });
  // Every key answers 429 with Retry-After: 1 s, once.
  for (const k of [A, B, C]) stack.sim.addRule({ match: { key: k }, type: 'generic-429', retryAfterSeconds: 1, times: 1 });
  const started = Date.now();
  const limited = await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect(limited.status).toBe(429);
  // More requests while it is down: no more alerts.
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(429);

  await eventually(async () => receiver!.alerts.length >= 1, 'the unavailable alert');
  expect(receiver.alerts[0]).toEqual({
    kind: 'provider_unavailable',
    provider: 'kimi',
    at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    message: 'kimi has no usable key (3 cooling, 0 disabled)',
  });

  // No traffic needed: the cooldowns end after 1 s and the provider is announced usable again.
  await eventually(async () => receiver!.alerts.length >= 2, 'the recovery alert', 4000);
  expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  expect(receiver.alerts[1]).toMatchObject({ kind: 'provider_recovered', provider: 'kimi', message: 'kimi has a usable key again' });
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  await sleep(200);
  expect(receiver.alerts).toHaveLength(2);

  // Down again within ORCHE_ALERT_INTERVAL_MS: no second unavailable alert.
  for (const k of [A, B, C]) stack.sim.addRule({ match: { key: k }, type: 'generic-429', retryAfterSeconds: 30, times: 1 });
  for (let i = 0; i < 3; i++) await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect((await stack.http.get('/api/key-status/kimi')).body.available).toBe(false);
  await sleep(200);
  expect(receiver.alerts).toHaveLength(2);
  expect(JSON.stringify(receiver.alerts)).not.toContain('sk-or-');
});

test('a disabled key is announced with its id; a provider with every key disabled is unavailable', async () => {
  receiver = await startReceiver();
  stack = await startStack(
    { PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: B, ORCHE_ALERT_WEBHOOK: receiver.url, ORCHE_ALERT_INTERVAL_MS: '2000' },
    { keys: [{ key: A, revoked: true }, { key: B, revoked: true }] },
  );
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(503);
  await eventually(async () => receiver!.alerts.length >= 2, 'the alerts');
  await sleep(150);
  const kinds = receiver.alerts.map((a) => `${a.kind}:${a.key_id ?? ''}`);
  // One key_disabled per provider per interval: B's came right after A's and was held back.
  expect(kinds).toEqual([`key_disabled:${keyId(A)}`, 'provider_unavailable:']);
});

test('a webhook that hangs or fails never slows requests; its failure is logged once', async () => {
  receiver = await startReceiver((res) => res.writeHead(500).end());
  stack = await startStack({ ...kimi, ORCHE_ALERT_WEBHOOK: receiver.url, ORCHE_ALERT_INTERVAL_MS: '0' }, { keys: [{ key: A }, { key: B }, { key: C }] });
  for (let round = 0; round < 2; round++) {
    for (const k of [A, B, C]) stack.sim.addRule({ match: { key: k }, type: 'generic-429', retryAfterSeconds: 1, times: 1 });
    await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    await eventually(async () => receiver!.alerts.length >= 2 * round + 1, 'an alert');
    await stack.orche.ctx.pool.resetCooldowns(undefined, Date.now());
    await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    await eventually(async () => receiver!.alerts.length >= 2 * round + 2, 'a recovery alert');
  }
  await sleep(100);
  const failures = stack.logs.parsed().filter((l) => l.message === 'alert webhook failed');
  expect(failures).toHaveLength(1);
  expect(failures[0].error).toBe('the webhook answered 500');
  expect(stack.logs.lines.join('\n')).not.toContain('/hook');

  // A webhook that never answers: the request that triggers the alert is as fast as ever.
  await receiver.close();
  receiver = await startReceiver(() => undefined);
  await stack.close();
  stack = await startStack({ ...kimi, ORCHE_ALERT_WEBHOOK: receiver.url }, { keys: [{ key: A }, { key: B }, { key: C }] });
  for (const k of [A, B, C]) stack.sim.addRule({ match: { key: k }, type: 'generic-429', retryAfterSeconds: 1, times: 1 });
  const t = Date.now();
  expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(429);
  expect(Date.now() - t).toBeLessThan(500);
  await eventually(async () => receiver!.alerts.length >= 1, 'the alert reached the hanging webhook');
});
