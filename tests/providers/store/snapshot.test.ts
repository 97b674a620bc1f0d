/**
 * State survives a restart: a real orche process with ORCHE_STATE_FILE, killed with SIGKILL.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { keyId } from '../../../providers/keys/keys';
import { startSimulator, type Simulator } from '../../../scripts/simulator';
import { eventually, spawnOrche, type OrcheProcess } from '../../helpers/child';
import { hi } from '../../helpers/stack';

const A = 'sk-or-v1-restart-key-a-0001';
const B = 'sk-or-v1-restart-key-b-0002';
const C = 'sk-or-v1-restart-key-c-0003';

let sim: Simulator | undefined;
let orche: OrcheProcess | undefined;
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'orche-restart-'));
});
afterEach(async () => {
  await orche?.stop('SIGKILL');
  await sim?.close();
  orche = sim = undefined;
  rmSync(dir, { recursive: true, force: true });
});

interface KeyRow {
  id: string;
  state: string;
  cooldown_until: number | null;
  calls_today: number;
  requests: number;
  successes: number;
  rate_limited: number;
}

async function kimiKeys(url: string): Promise<KeyRow[]> {
  return (await request(url).get('/api/key-status/kimi')).body.keys;
}

test('after kill -9 a cooled key is still cooling until the same reset; rotation position and counters are kept', async () => {
  sim = await startSimulator({ keys: [{ key: A }, { key: B }, { key: C }] });
  sim.addRule({ match: { key: A }, type: 'generic-429', headers: { 'Retry-After': '120' }, times: 1 });
  const file = join(dir, 'state.json');
  const env = { OPENROUTER_BASE_URL: sim.baseUrl, ORCHE_STATE_FILE: file, PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}` };
  orche = await spawnOrche(env);

  // A answers 429 and cools for 120 s; B, C, B serve. The rotation position now points at C.
  const served = [];
  for (let i = 0; i < 3; i++) {
    const res = await request(orche.url).post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(200);
    served.push(res.body.key_id);
  }
  expect(served).toEqual([keyId(B), keyId(C), keyId(B)]);
  const answeredAt = Date.now();
  const before = await kimiKeys(orche.url);
  expect(before.map((k) => [k.state, k.calls_today, k.requests])).toEqual([['cooling', 1, 1], ['active', 2, 2], ['active', 1, 1]]);

  // docs/design.md: at most the last second may be lost. Wait until the last request's counters are on disk.
  await eventually(
    async () => {
      if (!existsSync(file)) return undefined;
      const saved = JSON.parse(readFileSync(file, 'utf8'));
      return saved.sections?.pool_stats?.kimi?.totals?.requests === 4 ? true : undefined;
    },
    'the snapshot to hold the last request',
    1000,
  );
  expect(Date.now() - answeredAt).toBeLessThan(1000);
  await orche.stop('SIGKILL');

  orche = await spawnOrche(env);
  const after = await kimiKeys(orche.url);
  expect(after).toEqual(before.map((k) => ({ ...k, cooldown_remaining_ms: expect.any(Number) })));
  expect(after[0]).toMatchObject({ id: keyId(A), state: 'cooling', cooldown_until: before[0].cooldown_until, rate_limited: 1 });
  expect(after[0].cooldown_until).toBeGreaterThan(Date.now() + 100_000);

  // With the position lost, the next pick would start at A (cooling) and land on B.
  const next = await request(orche.url).post('/api/chat').send({ provider: 'kimi', messages: hi });
  expect(next.body.key_id).toBe(keyId(C));
  expect(sim.calls.map((c) => [c.key, c.status])).toEqual([[A, 429], [B, 200], [C, 200], [B, 200], [C, 200]]);
});

test('SIGTERM writes the snapshot on the way out', async () => {
  sim = await startSimulator({ keys: [{ key: A }] });
  const file = join(dir, 'state.json');
  const env = { OPENROUTER_BASE_URL: sim.baseUrl, ORCHE_STATE_FILE: file, PROVIDER_KIMI_API_KEY: A };
  orche = await spawnOrche(env);
  expect((await request(orche.url).post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  // Stopped before the write timer fires (200 ms): only the shutdown write can save the call.
  expect(existsSync(file)).toBe(false);
  await orche.stop('SIGTERM');
  expect(orche.child.exitCode).toBe(0);
  expect(JSON.parse(readFileSync(file, 'utf8')).sections.pool_stats.kimi.totals.requests).toBe(1);
  orche = await spawnOrche(env);
  expect((await kimiKeys(orche.url))[0]).toMatchObject({ requests: 1, successes: 1, calls_today: 1 });
});

/** A well-formed snapshot from a running orche (A cooling, the kimi position at 1), with one value spoiled. */
function snapshotWith(spoil: (f: Record<string, any>) => void): string {
  const now = Date.now();
  const f: Record<string, any> = {
    format: 'orche-state',
    version: 1,
    saved_at: now - 1000,
    state: {
      gates: { [`k:${keyId(A)}`]: { until: now + 120_000, reason: 'rate_limited', recovering: false, trialUntil: 0 } },
      disabled: {},
      strikes: {},
      aliases: {},
      counters: {},
      positions: { kimi: { value: 1, at: now - 1000 } },
      learned: {},
    },
    sections: {},
  };
  spoil(f);
  return JSON.stringify(f);
}

test.each<[string, string, (f: Record<string, any>) => void]>([
  ['a gate that is null', `state.gates["k:${keyId(C)}"]`, (f) => (f.state.gates[`k:${keyId(C)}`] = null)],
  ['a gate that is a number', `state.gates["k:${keyId(C)}"]`, (f) => (f.state.gates[`k:${keyId(C)}`] = 7)],
  ['a string saved_at', 'saved_at', (f) => (f.saved_at = 'last night')],
  ['a non-numeric round-robin position', 'state.positions["kimi"]', (f) => (f.state.positions.kimi = { value: 'next', at: Date.now() })],
])('a snapshot with %s: orche starts, serves every request, keeps the rest and rewrites the file', async (_kind, name, spoil) => {
  sim = await startSimulator({ keys: [{ key: A }, { key: B }, { key: C }] });
  const file = join(dir, 'state.json');
  writeFileSync(file, snapshotWith(spoil));
  orche = await spawnOrche({ OPENROUTER_BASE_URL: sim.baseUrl, ORCHE_STATE_FILE: file, PROVIDER_KIMI_API_KEY: A, PROVIDER_KIMI_BACKUP_KEYS: `${B},${C}` });
  for (let i = 0; i < 3; i++) {
    const res = await request(orche.url).post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(200);
    // A is still cooling from the snapshot: it serves none of them.
    expect(res.body.key_id).not.toBe(keyId(A));
  }
  const warn = await orche.waitForLine((l) => l.level === 'warn' && String(l.message).startsWith('state snapshot'));
  expect(warn).toMatchObject({ path: file, dropped: [name], count: 1 });
  expect((await request(orche.url).get('/api/key-status/kimi')).status).toBe(200);
  // Rewritten without the bad value: it parses, and names no malformed entry any more.
  await eventually(async () => {
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    return typeof saved.saved_at === 'number' && saved.state.gates[`k:${keyId(C)}`] === undefined && typeof saved.state.positions.kimi?.value === 'number';
  }, 'the snapshot rewritten clean');
});
