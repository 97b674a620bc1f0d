/**
 * Hot reload: SIGHUP to a real orche process, and POST /api/admin/reload in process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { ConfigError, type Env, loadConfig, parseConfig } from '../../../config';
import { keyId } from '../../../providers/keys/keys';
import { startSimulator, type Simulator } from '../../../scripts/simulator';
import { eventually, type OrcheProcess, startOrcheProcess } from '../../helpers/child';
import { hi, startStack, type Stack, TEST_ENV } from '../../helpers/stack';

const A = 'sk-or-v1-reload-key-a-0001';
const B = 'sk-or-v1-reload-key-b-0002';
const C = 'sk-or-v1-reload-key-c-0003';
const ADMIN = 'admin-token-reload';
const BROKEN = `PROVIDER_KIMI_API_KEY=${A}\nORCHE_MAX_ATTEMPTS=many\n`;

/** The message start-up gives for a bad file, computed the way start-up computes it. */
function startupMessage(text: string): string {
  try {
    parseConfig(Object.fromEntries(text.trim().split('\n').map((l) => l.split('=') as [string, string])));
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
  }
  throw new Error('expected the broken file to be refused');
}

type KeyRow = { id: string; state: string; cooldown_until: number | null };
async function kimiKeys(url: string): Promise<Record<string, KeyRow>> {
  const res = await request(url).get('/api/key-status/kimi');
  return Object.fromEntries(res.body.keys.map((k: KeyRow) => [k.id, k]));
}

describe('SIGHUP to a running orche process', () => {
  let sim: Simulator | undefined;
  let orche: OrcheProcess | undefined;
  afterEach(async () => {
    await orche?.close();
    await sim?.close();
    orche = sim = undefined;
  });

  test('a new key joins, a cooling key keeps its cooldown, a broken file leaves the old configuration serving', async () => {
    sim = await startSimulator({ keys: [{ key: A }, { key: B }, { key: C }] });
    orche = await startOrcheProcess(`PROVIDER_KIMI_API_KEY=${A}\nPROVIDER_KIMI_BACKUP_KEYS=${B}\nPROVIDER_KIMI_STRATEGY=failover\n`, { OPENROUTER_BASE_URL: sim.baseUrl });
    sim.addRule({ match: { key: A }, type: 'generic-429', retryAfterSeconds: 600, times: 1 });
    expect((await request(orche.url).post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
    const before = await kimiKeys(orche.url);
    expect(before[keyId(A)].state).toBe('cooling');
    const cooldownUntil = before[keyId(A)].cooldown_until;
    expect(Object.keys(before)).toHaveLength(2);

    orche.writeEnv(`PROVIDER_KIMI_API_KEY=${A}\nPROVIDER_KIMI_BACKUP_KEYS=${B},${C}\nPROVIDER_KIMI_STRATEGY=failover\n`);
    orche.signal('SIGHUP');
    const after = await eventually(async () => {
      const keys = await kimiKeys(orche!.url);
      return keys[keyId(C)] ? keys : undefined;
    }, 'the new key listed after SIGHUP');
    expect(after[keyId(C)].state).toBe('active');
    expect(after[keyId(A)]).toMatchObject({ state: 'cooling', cooldown_until: cooldownUntil });
    const reloaded = await orche.waitForLine((l) => l.message === 'configuration reloaded');
    expect(reloaded.providers).toEqual([{ provider: 'kimi', keys: 3, added: [keyId(C)], removed: [] }]);

    orche.writeEnv(BROKEN);
    orche.signal('SIGHUP');
    const refused = await orche.waitForLine((l) => typeof l.message === 'string' && l.message.startsWith('reload refused'));
    expect(refused.message).toBe(`reload refused: configuration error: ${startupMessage(BROKEN)}`);
    expect(refused.error).toMatch(/^ORCHE_MAX_ATTEMPTS: expected a whole number/);
    // Still the three keys, still serving.
    expect(Object.keys(await kimiKeys(orche.url)).sort()).toEqual([keyId(A), keyId(B), keyId(C)].sort());
    expect((await request(orche.url).post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
    expect(orche.lines.map((l) => JSON.stringify(l)).join('\n')).not.toContain('sk-or-v1-reload');
  });
});

describe('POST /api/admin/reload', () => {
  let stack: Stack | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await stack?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    stack = undefined;
    dir = undefined;
  });

  async function start(fileText: string): Promise<{ stack: Stack; write: (t: string) => void }> {
    dir = mkdtempSync(join(tmpdir(), 'orche-reload-'));
    const file = join(dir, 'orche.env');
    writeFileSync(file, fileText);
    const fileEnv: Env = Object.fromEntries(fileText.trim().split('\n').map((l) => l.split('=') as [string, string]));
    // The real environment carries no keys, so the file decides them, as in production.
    let base: Env = {};
    const s = await startStack(fileEnv, { keys: [{ key: A }, { key: B }, { key: C }] }, { loadConfig: () => loadConfig(base, dir) });
    base = { ...TEST_ENV, OPENROUTER_BASE_URL: s.sim.baseUrl, PORT: '0', HOST: '127.0.0.1' };
    return { stack: s, write: (t) => writeFileSync(file, t) };
  }

  test('removes and adds keys, reports settings that need a restart, and refuses a bad file with 400', async () => {
    const first = `PROVIDER_KIMI_API_KEY=${A}\nPROVIDER_KIMI_BACKUP_KEYS=${B}\nORCHE_ADMIN_TOKEN=${ADMIN}\nORCHE_FREE_RPM=5`;
    const started = await start(first);
    stack = started.stack;
    const auth = { Authorization: `Bearer ${ADMIN}` };

    expect((await stack.http.post('/api/admin/reload')).status).toBe(401);
    started.write(`PROVIDER_KIMI_API_KEY=${A}\nPROVIDER_KIMI_BACKUP_KEYS=${C}\nORCHE_ADMIN_TOKEN=${ADMIN}\nORCHE_FREE_RPM=7\nORCHE_BODY_LIMIT=2mb\nORCHE_CLIENT_RPM=30`);
    const ok = await stack.http.post('/api/admin/reload').set(auth);
    expect(ok.status).toBe(200);
    expect(ok.body.providers.find((p: { provider: string }) => p.provider === 'kimi')).toEqual({ provider: 'kimi', keys: 2, added: [keyId(C)], removed: [keyId(B)] });
    expect(ok.body.restart_required).toEqual(['ORCHE_CLIENT_RPM', 'ORCHE_BODY_LIMIT']);
    expect(stack.orche.ctx.config.budgets.freeRpm).toBe(7);
    expect(Object.keys(await kimiKeys(stack.url)).sort()).toEqual([keyId(A), keyId(C)].sort());
    for (let i = 0; i < 4; i++) await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(stack.sim.calls.filter((c) => c.key === B)).toHaveLength(0);
    expect(stack.sim.calls.filter((c) => c.key === C)).toHaveLength(2);

    started.write(BROKEN);
    const bad = await stack.http.post('/api/admin/reload').set(auth);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toEqual({ code: 400, type: 'invalid_config', message: startupMessage(BROKEN) });
    expect(Object.keys(await kimiKeys(stack.url)).sort()).toEqual([keyId(A), keyId(C)].sort());
  });

  test('a reload frees the usage buckets of removed keys and checks the models again', async () => {
    const started = await start(`PROVIDER_KIMI_API_KEY=${A}\nPROVIDER_KIMI_BACKUP_KEYS=${B}\nORCHE_ADMIN_TOKEN=${ADMIN}`);
    stack = started.stack;
    const s = stack;
    for (let i = 0; i < 2; i++) await s.http.post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(s.orche.ctx.usage.tracked().sort()).toEqual([`kimi/${keyId(A)}`, `kimi/${keyId(B)}`].sort());
    // B leaves; a provider with a model the upstream does not list arrives.
    started.write(`PROVIDER_KIMI_API_KEY=${A}\nORCHE_ADMIN_TOKEN=${ADMIN}\nORCHE_PROVIDERS=MISTRAL\nPROVIDER_MISTRAL_MODEL=vendor/not-listed\nPROVIDER_MISTRAL_API_KEY=${C}`);
    expect((await s.http.post('/api/admin/reload').set({ Authorization: `Bearer ${ADMIN}` })).status).toBe(200);
    expect(s.orche.ctx.usage.tracked()).toEqual([`kimi/${keyId(A)}`]);
    await eventually(async () => s.orche.ctx.modelCheck.missing.includes('vendor/not-listed') || undefined, 'the model check after the reload');
    expect(s.orche.ctx.modelCheck).toEqual({ checked: true, missing: ['vendor/not-listed'] });
  });

  test('an instance built without a config loader says reload is unavailable', async () => {
    stack = await startStack({ PROVIDER_KIMI_API_KEY: A, ORCHE_ADMIN_TOKEN: ADMIN }, { keys: [{ key: A }] });
    const res = await stack.http.post('/api/admin/reload').set('Authorization', `Bearer ${ADMIN}`);
    expect(res.status).toBe(501);
    expect(res.body.error.type).toBe('reload_unavailable');
  });
});
