/**
 * Graceful shutdown of a real orche process: SIGTERM while a slow answer is in flight.
 */
import { startSimulator, type FaultRule, type Simulator } from '../../../scripts/simulator';
import { eventually, type OrcheProcess, startOrcheProcess } from '../../helpers/child';
import { hi } from '../../helpers/stack';

const A = 'sk-or-v1-shutdown-key-a-0001';

/** One kind of slow response: JSON, or a stream whose events arrive slowly. */
interface SlowVariant {
  name: string;
  rule: FaultRule;
  path: string;
  body: Record<string, unknown>;
  /** The complete answer, as the client received it. */
  check(text: string): void;
}

const VARIANTS: SlowVariant[] = [
  {
    name: 'a slow JSON answer (800 ms)',
    rule: { type: 'delay', delayMs: 800 },
    path: '/api/chat',
    body: { provider: 'kimi', messages: hi },
    check: (text) => expect(JSON.parse(text)).toMatchObject({ provider: 'kimi', content: expect.any(String), attempts: 1 }),
  },
  {
    name: 'a slow stream (300 ms to the first event, then 150 ms between events)',
    rule: { type: 'delay', delayMs: 300, chunkDelayMs: 150 },
    path: '/v1/chat/completions',
    body: { model: 'kimi', messages: hi, stream: true },
    check: (text) => {
      // The whole stream arrived: every content piece in order, then [DONE], and no error chunk.
      const data = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
      expect(data[data.length - 1]).toBe('[DONE]');
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { error?: unknown; choices: Array<{ delta?: { content?: string } }> });
      expect(chunks.filter((c) => c.error)).toEqual([]);
      expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('Hello from moonshotai/kimi-k2 (sim #1)');
    },
  },
];

let sim: Simulator | undefined;
let orche: OrcheProcess | undefined;
afterEach(async () => {
  await orche?.close();
  await sim?.close();
  orche = sim = undefined;
});

async function startWith(rule: FaultRule, graceMs: number): Promise<void> {
  sim = await startSimulator({ keys: [{ key: A }] });
  sim.addRule(rule);
  orche = await startOrcheProcess(`PROVIDER_KIMI_API_KEY=${A}\nORCHE_SHUTDOWN_GRACE_MS=${graceMs}\n`, { OPENROUTER_BASE_URL: sim.baseUrl });
}

/** Sends the request and waits until the simulator holds it: the answer is now in flight. */
async function inFlight(v: SlowVariant): Promise<{ pending: Promise<{ status: number; text: string; endedAt: number }> }> {
  const pending = fetch(`${orche!.url}${v.path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(v.body) }).then(async (res) => {
    const text = await res.text();
    return { status: res.status, text, endedAt: Date.now() };
  });
  pending.catch(() => undefined); // observed by the test; never an unhandled rejection meanwhile
  await eventually(async () => sim!.calls.some((c) => c.status === 0), 'the upstream call in flight');
  // Wrapped: returning the promise itself from an async function would wait for the answer.
  return { pending };
}

test.each(VARIANTS)('SIGTERM during $name: it completes with 200, new connections are refused, then the process exits 0', async (v) => {
  await startWith(v.rule, 10_000);
  const { pending } = await inFlight(v);
  const signalled = Date.now();
  orche!.signal('SIGTERM');
  await orche!.waitForLine((l) => l.message === 'shutting down');
  await expect(fetch(`${orche!.url}/health`)).rejects.toThrow();

  const res = await pending;
  expect(res.status).toBe(200);
  v.check(res.text);
  const code = await orche!.exited;
  const exitedAt = Date.now();
  expect(code).toBe(0);
  expect(exitedAt).toBeGreaterThanOrEqual(res.endedAt);
  // The answer really was in flight when the signal came (the rule holds it 800 ms).
  expect(res.endedAt - signalled).toBeGreaterThan(300);
  expect(orche!.lines.some((l) => l.message === 'shut down')).toBe(true);
});

test('past ORCHE_SHUTDOWN_GRACE_MS the remaining requests are cut and the process still exits 0', async () => {
  await startWith({ type: 'delay', delayMs: 10_000 }, 300);
  const { pending } = await inFlight({ ...VARIANTS[0], rule: { type: 'delay', delayMs: 10_000 } });
  const signalled = Date.now();
  orche!.signal('SIGTERM');
  await expect(pending).rejects.toThrow();
  expect(await orche!.exited).toBe(0);
  expect(Date.now() - signalled).toBeLessThan(3000);
  expect(orche!.lines.find((l) => l.message === 'shutdown deadline reached: requests cut')).toMatchObject({ cut: 1, grace_ms: 300 });
});
