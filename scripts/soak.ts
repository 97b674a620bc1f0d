/**
 * `npm run soak` (or `npm run bench -- --soak`): orche alone, in its own process, under a steady load
 * against the simulator with 10 % upstream faults (5xx, 429, hangs, broken streams), for 10 minutes
 * by default. Every few seconds it samples orche's resident memory (/proc) and its event-loop delay
 * (p99 since the last sample, from /metrics: prom-client's monitorEventLoopDelay), then idles to see
 * the memory settle. Prints the curve and the verdict; `--write` appends them to BENCHMARKS.md.
 *
 * Options: --seconds N (load, default 600), --idle N (after the load, default 60), --rate N (requests
 * per second, default 40), --sample-seconds N (default 5), --write.
 * Targets: RSS after warm-up (the first 20 % of the load) grows ≤ 10 % (30 s means: the end of the load
 * against the end of the warm-up) and is within 10 % of that baseline after the idle; event-loop p99 < 20 ms.
 */
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BUILTIN_PROVIDERS } from '../config/providers';
import { rssOf, startOrche, startPrinting, type Proc } from './bench/processes';

interface Options {
  seconds: number;
  idle: number;
  rate: number;
  sampleSeconds: number;
  write: boolean;
}

function options(argv: string[]): Options {
  const num = (name: string, fallback: number) => {
    const i = argv.indexOf(name);
    if (i < 0) return fallback;
    const n = Number(argv[i + 1]);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}: expected a positive number`);
    return n;
  };
  return { seconds: num('--seconds', 600), idle: num('--idle', 60), rate: num('--rate', 40), sampleSeconds: num('--sample-seconds', 5), write: argv.includes('--write') };
}

/** 10 % of upstream calls fail, spread over the kinds of fault a real upstream has. */
const FAULTS = [
  { type: 'status', status: 502, probability: 0.03 },
  { type: 'generic-429', retryAfterSeconds: 1, probability: 0.025 },
  { type: 'hang', probability: 0.015 },
  { type: 'reset', probability: 0.01 },
  // Stream-only faults apply to streaming calls (a third of the load): about 2 % of all calls.
  { type: 'stream-error', afterChunks: 2, probability: 0.06 },
];

interface Sample {
  t: number;
  phase: 'warm-up' | 'load' | 'idle';
  done: number;
  failed: number;
  rssMb: number;
  heapMb: number;
  lagP99Ms: number;
}

const messages = [{ role: 'user', content: 'Say hello in one short sentence.' }];

async function metric(orche: Proc, name: string): Promise<number> {
  const text = await (await fetch(`${orche.url}/metrics`)).text();
  const m = new RegExp(`^${name} ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

/** Steady load: `rate` requests a second (a third of them streams), at most 200 in flight. */
function load(orche: Proc, rate: number) {
  const slugs = BUILTIN_PROVIDERS.map((p) => p.id.toLowerCase());
  const stats = { done: 0, failed: 0, inflight: 0 };
  let n = 0;
  const one = async () => {
    const i = n++;
    const stream = i % 3 === 0;
    stats.inflight++;
    try {
      const res = await fetch(`${orche.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: slugs[i % slugs.length], messages, stream }),
      });
      await res.arrayBuffer();
      if (!res.ok) stats.failed++;
    } catch {
      stats.failed++;
    } finally {
      stats.done++;
      stats.inflight--;
    }
  };
  const timer = setInterval(() => {
    if (stats.inflight < 200) void one();
  }, 1000 / rate);
  return {
    stats,
    async stop() {
      clearInterval(timer);
      while (stats.inflight > 0) await new Promise((r) => setTimeout(r, 50));
    },
  };
}

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

export async function soak(argv: string[]): Promise<void> {
  const o = options(argv);
  const procs: Proc[] = [];
  const load0 = loadavg()[0];
  try {
    const dir = mkdtempSync(join(tmpdir(), 'orche-soak-'));
    const simConfig = join(dir, 'sim.json');
    // No account limits: the only failures are the injected faults.
    writeFileSync(simConfig, JSON.stringify({ accountLimits: 'off', acceptAnyKey: true }));
    const sim = await startPrinting('scripts/simulator.js', ['--port', '0', '--latency', '20', '--config', simConfig]);
    procs.push(sim);
    for (const rule of FAULTS) {
      const res = await fetch(`${sim.url}/_sim/rules`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rule) });
      if (!res.ok) throw new Error(`the simulator refused the fault rule ${rule.type} (${res.status})`);
    }
    const env: Record<string, string> = { OPENROUTER_BASE_URL: `${sim.url}/api/v1`, ORCHE_REQUEST_TIMEOUT_MS: '2000', ORCHE_CLIENT_RPM: '1000000', ORCHE_PROBE_INTERVAL_MS: '0', LOG_LEVEL: 'warn' };
    for (const p of BUILTIN_PROVIDERS) {
      env[`PROVIDER_${p.id}_API_KEY`] = `sk-or-v1-soak-${p.id.toLowerCase()}-1`;
      env[`PROVIDER_${p.id}_BACKUP_KEYS`] = [2, 3].map((n) => `sk-or-v1-soak-${p.id.toLowerCase()}-${n}`).join(',');
    }
    const orche = await startOrche(env);
    procs.push(orche);
    const pid = orche.child.pid!;
    await metric(orche, 'nodejs_eventloop_lag_p99_seconds'); // starts the interval the first sample reports

    const samples: Sample[] = [];
    const started = Date.now();
    // Two minutes of ten: V8 sizes its heap (and RSS jumps at its first major collections) meanwhile.
    const warmUpEnd = o.seconds * 0.2;
    const take = async (phase: Sample['phase'], s: { done: number; failed: number }) => {
      const lag = await metric(orche, 'nodejs_eventloop_lag_p99_seconds');
      const heap = await metric(orche, 'nodejs_heap_size_used_bytes');
      const sample = { t: Math.round((Date.now() - started) / 1000), phase, done: s.done, failed: s.failed, rssMb: rssOf(pid) / 2 ** 20, heapMb: heap / 2 ** 20, lagP99Ms: lag * 1000 };
      samples.push(sample);
      console.log(`t=${sample.t}s ${phase} done=${sample.done} failed=${sample.failed} rss=${fmt(sample.rssMb)}MB heap=${fmt(sample.heapMb)}MB lag_p99=${fmt(sample.lagP99Ms, 2)}ms`);
    };

    const traffic = load(orche, o.rate);
    while ((Date.now() - started) / 1000 < o.seconds) {
      await new Promise((r) => setTimeout(r, o.sampleSeconds * 1000));
      await take((Date.now() - started) / 1000 <= warmUpEnd + o.sampleSeconds / 2 ? 'warm-up' : 'load', traffic.stats);
    }
    await traffic.stop();
    const idleStart = Date.now();
    while ((Date.now() - idleStart) / 1000 < o.idle) {
      await new Promise((r) => setTimeout(r, o.sampleSeconds * 1000));
      await take('idle', traffic.stats);
    }

    const report = verdict(samples, o, traffic.stats, load0);
    console.log(`\n${report}`);
    if (o.write) {
      const file = resolve(__dirname, '..', '..', 'BENCHMARKS.md');
      appendFileSync(file, `\n${report}`);
      console.log(`appended to ${file}`);
    }
  } finally {
    await Promise.all(procs.reverse().map((p) => p.stop()));
  }
}

function verdict(samples: Sample[], o: Options, stats: { done: number; failed: number }, load0: number): string {
  const warm = samples.filter((s) => s.phase === 'warm-up');
  const loaded = samples.filter((s) => s.phase === 'load');
  const idle = samples.filter((s) => s.phase === 'idle');
  // Means over 30 s windows (GC makes single samples jump): the end of the warm-up is the baseline,
  // the end of the load shows the growth, the end of the idle shows whether it settles back.
  const win = Math.max(1, Math.round(30 / o.sampleSeconds));
  const mean = (xs: Sample[]) => xs.reduce((a, s) => a + s.rssMb, 0) / Math.max(1, xs.length);
  const baseline = mean((warm.length ? warm : loaded).slice(-win));
  const endOfLoad = mean(loaded.slice(-win));
  const after = mean(idle.slice(-win));
  const peak = Math.max(...loaded.map((s) => s.rssMb), baseline);
  const lagMax = Math.max(...samples.filter((s) => s.phase !== 'idle').map((s) => s.lagP99Ms).filter(Number.isFinite));
  const growth = (endOfLoad / baseline - 1) * 100;
  const settle = (after / baseline - 1) * 100;
  const ok = { growth: growth <= 10, settle: settle <= 10, lag: lagMax < 20 };
  // Every sample on stdout; the file gets one row in six (every 30 s at the default 5 s).
  const every = o.write ? Math.max(1, Math.round(30 / o.sampleSeconds)) : 1;
  const rows = samples.filter((_, i) => i % every === every - 1 || i === samples.length - 1);
  const table = ['| t (s) | phase | requests done | failed (non-2xx) | RSS (MB) | heap used (MB) | event-loop p99 (ms) |', '|---|---|---|---|---|---|---|', ...rows.map((s) => `| ${s.t} | ${s.phase} | ${s.done} | ${s.failed} | ${fmt(s.rssMb)} | ${fmt(s.heapMb)} | ${fmt(s.lagP99Ms, 2)} |`)].join('\n');
  return [
    `### Soak ${new Date().toISOString()}: ${o.seconds} s at ${o.rate} req/s, then ${o.idle} s idle`,
    '',
    `Node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, load average ${fmt(load0, 2)} at the start (shared machine). orche alone in its own process; simulator with 20 ms latency and 10 % faults (502, 429 with Retry-After 1 s, hangs cut by the 2 s request timeout, connection resets, stream errors); a third of the requests stream.`,
    '',
    table,
    '',
    `| check | value | target | met |`,
    `|---|---|---|---|`,
    `| RSS growth: last 30 s of the load vs. the last 30 s of the warm-up (${fmt(baseline)} MB) | ${fmt(growth)} % (${fmt(endOfLoad)} MB; single-sample peak ${fmt(peak)} MB) | ≤ 10 % | ${ok.growth ? 'yes' : 'no'} |`,
    `| RSS at the end of ${o.idle} s idle vs. the baseline | ${fmt(settle)} % (${fmt(after)} MB) | ≤ 10 % | ${ok.settle ? 'yes' : 'no'} |`,
    `| event-loop delay p99, worst sample under load | ${fmt(lagMax, 2)} ms | < 20 ms | ${ok.lag ? 'yes' : 'no'} |`,
    `| requests | ${stats.done} done, ${stats.failed} non-2xx (${fmt((100 * stats.failed) / Math.max(1, stats.done))} %) | | |`,
    '',
    `verdict: ${ok.growth && ok.settle && ok.lag ? 'PASS' : 'FAIL'}`,
    '',
  ].join('\n');
}

if (require.main === module) {
  soak(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`soak failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
