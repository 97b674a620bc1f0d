/**
 * A 30-second smoke of the soak run (`npm run soak`) so that it cannot rot: it runs end to end at a low
 * load and prints its samples and its checks. No number is asserted (they depend on the machine)
 * and the verdict is NOT checked: PASS and FAIL both pass this test, which only shows the soak
 * still runs and reports (a smoke test, not a soak). BENCHMARKS.md holds the real 10-minute run.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/paths';

const run = promisify(execFile);

test('soak runs end to end at a low load and prints its curve, checks and a verdict (smoke: the verdict is not checked)', async () => {
  const { stdout } = await run(process.execPath, [resolve(ROOT, 'dist/scripts/soak.js'), '--seconds', '20', '--idle', '6', '--rate', '10', '--sample-seconds', '2'], { timeout: 90_000 });
  expect(stdout).toContain('| t (s) | phase | requests done | failed (non-2xx) | RSS (MB) | heap used (MB) | event-loop p99 (ms) |');
  const rows = stdout.split('\n').filter((l) => /^\| \d+ \| (warm-up|load|idle) \|/.test(l));
  expect(rows.length).toBeGreaterThanOrEqual(10);
  for (const phase of ['warm-up', 'load', 'idle']) expect(rows.some((r) => r.includes(`| ${phase} |`))).toBe(true);
  // Every sample has numbers: RSS, heap and the event-loop delay were read from the running orche.
  for (const r of rows) expect(r).toMatch(/\| \d+\.\d \| \d+\.\d \| \d+\.\d\d \|$/);
  for (const check of ['RSS growth', 'RSS at the end of', 'event-loop delay p99']) expect(stdout).toContain(check);
  // Smoke only: the verdict is printed, whichever it is; it is not asserted (see the top).
  expect(stdout).toMatch(/verdict: (PASS|FAIL)/);
  expect(stdout).not.toContain('appended to');
}, 120_000);
