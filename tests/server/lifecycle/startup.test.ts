/**
 * A failed start exits non-zero within seconds with one clear line (docs/design.md#start-up-checks), and an uncaught
 * exception ends the process (logged, non-zero): the real entry point in a child process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchOrche, type OrcheProcess } from '../../helpers/child';
import { TEST_ENV } from '../../helpers/stack';
import { REDIS_URL, redisAvailable, uniquePrefix } from '../../helpers/redis';

// Nothing answers here: the start-up model check must not reach any network.
const BASE = { ...(TEST_ENV as Record<string, string>), OPENROUTER_BASE_URL: 'http://127.0.0.1:9/api/v1', LOG_LEVEL: 'info', PROVIDER_KIMI_API_KEY: 'sk-or-v1-startup-test-key-0001' };

let procs: OrcheProcess[] = [];
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
let busy: Server | undefined;
afterEach(async () => {
  await Promise.all(procs.map((p) => p.close()));
  procs = [];
  await new Promise<void>((r) => (busy ? busy.close(() => r()) : r()));
  busy = undefined;
});

/** A port held by another listener for the test. */
async function portInUse(): Promise<number> {
  busy = createServer();
  await new Promise<void>((r) => busy!.listen(0, '127.0.0.1', () => r()));
  return (busy.address() as { port: number }).port;
}

/**
 * Runs orche until it exits (or `limitMs` passes: then the test fails, the process is killed). The
 * limit is well beyond the bounds the tests assert, so that a slow exit is measured and reported
 * by them rather than cut here.
 */
const RUN_LIMIT_MS = 20_000;
/** Jest's own limit for a test that runs orche to its exit. */
const TEST_LIMIT_MS = RUN_LIMIT_MS + 10_000;
async function runToExit(env: Record<string, string>, limitMs = RUN_LIMIT_MS): Promise<{ code: number | null; ms: number; proc: OrcheProcess }> {
  const started = Date.now();
  const proc = launchOrche('', { ...BASE, ...env });
  procs.push(proc);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([proc.exited, new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), limitMs)))]);
  clearTimeout(timer);
  if (code === 'hung') throw new Error(`orche did not exit within ${limitMs} ms; output:\n${proc.lines.map((l) => JSON.stringify(l)).join('\n')}`);
  return { code, ms: Date.now() - started, proc };
}

const failureLines = (proc: OrcheProcess) => proc.lines.filter((l) => l.level === 'error' || String(l.message).startsWith('orche:'));

describe('a failed start', () => {
  test('port already in use: exits non-zero within seconds with one clear line naming the address', async () => {
    const port = await portInUse();
    const { code, ms, proc } = await runToExit({ PORT: String(port) });
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    // "Within seconds" (docs/design.md#start-up-checks): an outcome with a generous margin, not a speed benchmark.
    expect(ms).toBeLessThan(5000);
    const lines = failureLines(proc);
    expect(lines).toHaveLength(1);
    expect(String(lines[0].message)).toMatch(/cannot listen on 127\.0\.0\.1:\d+.*(in use|EADDRINUSE)/);
  }, TEST_LIMIT_MS);

  (redisAvailable() ? test : test.skip)('port already in use with REDIS_URL (a live Redis connection keeps the loop alive): still exits non-zero', async () => {
    const port = await portInUse();
    const { code, ms, proc } = await runToExit({ PORT: String(port), REDIS_URL, ORCHE_REDIS_PREFIX: uniquePrefix('startup') });
    expect(code).not.toBe(0);
    expect(ms).toBeLessThan(5000);
    expect(failureLines(proc)).toHaveLength(1);
  }, TEST_LIMIT_MS);

  test('ORCHE_REDIS_REQUIRED=true and no Redis answers: exits non-zero within seconds, naming the host but no password', async () => {
    const dead = (busy = createServer((socket) => socket.destroy()));
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const port = (dead.address() as { port: number }).port;
    const { code, ms, proc } = await runToExit({ REDIS_URL: `redis://:s3cret-pass@127.0.0.1:${port}`, ORCHE_REDIS_REQUIRED: 'true' });
    expect(code).toBe(1);
    // It waits 5 s for Redis by design, then exits at once.
    expect(ms).toBeGreaterThanOrEqual(5000);
    expect(ms).toBeLessThan(10_000);
    const lines = failureLines(proc);
    expect(lines).toHaveLength(1);
    expect(String(lines[0].message)).toBe(`orche: failed to start: redis at redis://127.0.0.1:${port} did not answer within 5 s (ORCHE_REDIS_REQUIRED=true)`);
    expect(JSON.stringify(proc.lines)).not.toContain('s3cret-pass');
  }, TEST_LIMIT_MS);

  test('bad configuration: exits 2 with one configuration error line', async () => {
    const { code, ms, proc } = await runToExit({ ORCHE_MAX_ATTEMPTS: 'many' });
    expect(code).toBe(2);
    expect(ms).toBeLessThan(5000);
    expect(proc.lines.filter((l) => /configuration error/.test(String(l.message)))).toHaveLength(1);
  }, TEST_LIMIT_MS);
});

test('an uncaught exception is logged and ends the process non-zero', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'orche-hook-'));
  dirs.push(dir);
  const hook = join(dir, 'throw.js');
  // A bug reaches the top of the event loop once orche is up (its handlers are installed).
  writeFileSync(
    hook,
    "const t = setInterval(() => { if (process.listenerCount('uncaughtException') > 0) { clearInterval(t); setTimeout(() => { throw new Error('boom from a timer'); }, 100); } }, 20);\n",
  );
  const { code, proc } = await runToExit({ NODE_OPTIONS: `--require ${hook}` });
  expect(code).not.toBe(0);
  expect(code).not.toBeNull();
  expect(proc.lines.find((l) => l.message === 'uncaught exception')).toMatchObject({ level: 'error', error: 'boom from a timer' });
}, TEST_LIMIT_MS);
