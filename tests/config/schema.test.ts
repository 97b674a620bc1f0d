/**
 * config/schema.ts through the real entry point (docs/design.md#hostile-connections-and-data): weak tokens stop
 * the start with one line that names the variable, never its value.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT } from '../helpers/paths';

const K = 'sk-or-v1-exposure-test-key-00000001';

describe('start-up refuses weak tokens (the real entry point)', () => {
  const ENTRY = resolve(ROOT, 'dist/server/index.js');
  test.each([
    ['ORCHE_CLIENT_TOKENS', 'short-token-1'],
    ['ORCHE_ADMIN_TOKEN', 'admin token 12345'],
  ])('%s=%s: exit 2 within seconds with one line naming the variable, never the value', (variable, value) => {
    if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run \`npm run build\` first (\`npm test\` does)`);
    const dir = mkdtempSync(join(tmpdir(), 'orche-weak-'));
    try {
      const r = spawnSync(process.execPath, [ENTRY], { cwd: dir, env: { PATH: process.env.PATH, PROVIDER_KIMI_API_KEY: K, PORT: '0', HOST: '127.0.0.1', [variable]: value }, timeout: 10_000, encoding: 'utf8' });
      expect(r.status).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`configuration error: ${variable}: expected `));
      expect(r.stderr + r.stdout).not.toContain(value);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
