/**
 * A smoke of `npm run bench` so it cannot rot: it runs for a few seconds and prints its table.
 * Numbers are never asserted here (they depend on the machine); BENCHMARKS.md holds real runs.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/paths';

const run = promisify(execFile);

test('bench --smoke runs end to end and prints every row of its table', async () => {
  const { stdout } = await run(process.execPath, [resolve(ROOT, 'dist/scripts/bench.js'), '--smoke'], { timeout: 120_000 });
  expect(stdout).toContain('| metric | orche | compared with | target | met |');
  for (const row of ['RPS at 50 connections', 'p99 latency at 50 connections', 'added latency at 1 connection', 'fan-out wall time', 'key pick, 1000 keys (memory store)']) {
    expect(stdout).toContain(row);
  }
  // The undici floor (issue 21) ran in the same run: its ratios are numbers, and the simulator was watched.
  expect(stdout).toMatch(/\| orche RPS \/ undici floor RPS \| \d+\.\d\d× \| [\d,]+ floor \|/);
  expect(stdout).toMatch(/\| orche's added latency \/ the floor's \(1 connection\) \| -?[\d.]+× mean, -?[\d.]+× p50 \|/);
  expect(stdout).toMatch(/\| simulator's CPU during the floor's and orche's rounds \| \d+% of a core \| \d+% for the floor/);
  expect(stdout).toMatch(/\| streaming: time to first byte added \(median\) \| [^|]+ \| [^|]+ ms floor \(\+/);
  expect(stdout).toMatch(/\| streaming: relay time added per chunk [^|]+ \| -?[\d.,]+ µs \| -?[\d.,]+ µs floor \|/);
  expect(stdout).toMatch(/\| streaming: server CPU per relayed chunk \| [\d,]+ \| [\d,]+ floor \(µs\) \|/);
  expect(stdout).not.toContain('appended to');
}, 150_000);

test('bench --rotation --smoke runs the rotation scenario against orche, the naive proxy, Redis, the fairness run and first-call windows', async () => {
  const { stdout } = await run(process.execPath, [resolve(ROOT, 'dist/scripts/bench.js'), '--rotation', '--smoke'], { timeout: 240_000 });
  expect(stdout).toContain('| run | served / ideal | upstream calls | upstream 429s (per scope) |');
  expect(stdout).toContain('| most 429s of one account in one window (windows) |');
  for (const row of ['| naive round-robin proxy | ', '| orche, 1 instance | ', '| orche, fairness 10:1 | ', '| orche, budgets configured (60 s windows) | ', '| orche, 3 instances on Redis | ', '| orche, 1 instance, first-call windows | ', '| orche, 3 instances on Redis, first-call windows | ']) {
    const line = stdout.split('\n').find((l) => l.startsWith(row));
    expect(line).toBeDefined();
    // served / ideal are numbers, and the ideal is positive: the scenario ran.
    expect(line).toMatch(/^\| [^|]+ \| \d+ \/ [1-9]\d* \(\d\.\d{3}\) \| \d+ \|/);
    // The last column: a count and the windows opened, in brackets.
    expect(line).toMatch(/\| \d+ \(\d+\) \|$/);
  }
  expect(stdout).toMatch(/lighter client's share of everything served[\s\S]*\| \d+\.\d% \(heavy \d+\/\d+, light \d+\/\d+\) \|/);
  expect(stdout).not.toContain('appended to');
}, 150_000);

test('bench --fairness --smoke prints each client\'s served count and share of everything served, on 1 instance and on 3 on Redis', async () => {
  const { stdout } = await run(process.execPath, [resolve(ROOT, 'dist/scripts/bench.js'), '--fairness', '--smoke'], { timeout: 120_000 });
  expect(stdout).toContain("| run | served per client (served / sent) | each client's share of everything served | served / ideal |");
  for (const row of ['| 10:1, 1 instance, cold (no limit learned yet) | ', '| 10:1, 1 instance | ', '| 3:1, 1 instance | ', '| 10:1, 3 instances on Redis, cold (no limit learned yet) | ', '| half of capacity, 1 instance | ', '| 10:1, 3 instances on Redis | ', '| 3:1, 3 instances on Redis | ']) {
    const line = stdout.split('\n').find((l) => l.startsWith(row));
    expect(line).toBeDefined();
    expect(line).toMatch(/\| client \d+\/\d+ \||\| heavy \d+\/\d+, light \d+\/\d+ \| heavy \d\.\d{3}, light \d\.\d{3} \| \d+ \/ [1-9]\d* \(\d\.\d{3}\) \|/);
  }
  expect(stdout).not.toContain('appended to');
}, 270_000);
