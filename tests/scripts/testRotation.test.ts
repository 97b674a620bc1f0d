/**
 * `npm run test:rotation` as a user runs it: the compiled script in a child process.
 * (`npm test` builds dist/ before jest runs.)
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { startStack, type Stack } from '../helpers/stack';
import { ROOT } from '../helpers/paths';

const run = promisify(execFile);
const SCRIPT = resolve(ROOT, 'dist/scripts/test_rotation.js');

async function script(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [SCRIPT, ...args], { timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

test('self-contained: prints, per provider, the key of each call and every rotation, and exits 0', async () => {
  const { code, out } = await script(['--requests', '3']);
  expect(code).toBe(0);
  for (const p of ['glm45', 'gptoss', 'llama3', 'kimi', 'qwen3', 'falcon']) expect(out).toContain(`== ${p} (`);
  expect(out.match(/upstream 429 on [0-9a-f]{12}/g)).toHaveLength(6);
  expect(out.match(/rotation \S+ {2}[0-9a-f]{12} -> [0-9a-f]{12} {2}\(rate_limited\)/g)).toHaveLength(6);
  expect(out).toContain('rotation check passed');
  expect(out).not.toContain('sk-or-v1-demo');
  // The real OpenRouter shapes of docs/design.md#the-outcome-table, each shown by its effect.
  expect(out).toMatch(/stream, 429 chunk after the empty role delta on [0-9a-f]{12}: status 200, served by [0-9a-f]{12}, one clean stream/);
  expect(out).toMatch(/402 for account demo-team \(2 keys\): 1 call\(s\) answered 402, 2\/2 keys disabled, served by [0-9a-f]{12} \(200\)/);
  expect(out).toMatch(/edge 429 "error code: 1015" \(Retry-After 4 s\): 429 upstream_edge_rate_limited, \/status edge limited until \S+, keys cooled: 0/);
  expect(out).toContain('after the hold: 200');
}, 60_000);

test('against a service whose keys are all invalid: exits non-zero with a clear message', async () => {
  const keys = ['sk-or-v1-invalid-one-000001', 'sk-or-v1-invalid-two-000002'];
  stack = await startStack({ PROVIDER_KIMI_API_KEY: keys[0], PROVIDER_KIMI_BACKUP_KEYS: keys[1] }, { keys: keys.map((key) => ({ key, revoked: true })) });
  const { code, out } = await script(['--url', stack.url, '--sim', stack.sim.baseUrl.replace('/api/v1', '')]);
  expect(code).toBe(1);
  expect(out).toContain('ROTATION CHECK FAILED');
  expect(out).toMatch(/kimi: every key is disabled or invalid; check PROVIDER_KIMI_API_KEY/);
}, 60_000);

test('against nothing: exits 2 saying it cannot reach orche', async () => {
  const { code, out } = await script(['--url', 'http://127.0.0.1:9']);
  expect(code).toBe(2);
  expect(out).toContain('cannot reach orche at http://127.0.0.1:9');
});
