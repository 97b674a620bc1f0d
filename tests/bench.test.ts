/**
 * A smoke of `npm run bench` so it cannot rot: it runs for a few seconds and prints its table.
 * Numbers are never asserted here (they depend on the machine); BENCHMARKS.md holds real runs.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

test('bench --smoke runs end to end and prints every row of its table', async () => {
  const { stdout } = await run(process.execPath, [resolve(__dirname, '../dist/scripts/bench.js'), '--smoke'], { timeout: 120_000 });
  expect(stdout).toContain('| metric | orche | compared with | target | met |');
  for (const row of ['RPS at 50 connections', 'p99 latency at 50 connections', 'added latency at 1 connection', 'fan-out wall time', 'key pick, 1000 keys (memory store)']) {
    expect(stdout).toContain(row);
  }
  expect(stdout).not.toContain('appended to');
}, 150_000);
