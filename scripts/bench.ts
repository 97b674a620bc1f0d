/**
 * `npm run bench`: what orche costs per request, against the simulator (no latency, no limits).
 * Servers run in their own processes; the load generator here. Rounds alternate A/B so machine drift
 * cancels. Prints a table and appends it to BENCHMARKS.md. `--smoke`: a few seconds, nothing appended.
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { BUILTIN_PROVIDERS } from '../config/providers';
import { MemoryStore } from '../providers/store/memory';
import { startOrche, startPrinting, type Proc } from './bench/processes';
import { type Row, sequentialLatency, throughputRounds, type Target } from './bench/measure';
import { pickCost, planOf } from './bench/pick';
import { profileRun } from './bench/profile';
import { chunkCosts, relayMemory, streamTimings } from './bench/stream';
import { redisFigures } from './bench/redis';
import { FULL, rotationBench, rotationTable, SMOKE } from './bench/rotation';
import { DEFAULT_PATIENCE_MS, fairnessBench, fairnessTable } from './bench/fairness';

const smoke = process.argv.includes('--smoke');
const rotationOnly = process.argv.includes('--rotation');
const fairnessOnly = process.argv.includes('--fairness');
// `--overhead`: only the figures against the floor (throughput, latency, streaming), for profiling runs.
const overheadOnly = process.argv.includes('--overhead');
const append = !smoke && !process.argv.includes('--no-append');
const SECONDS = smoke ? 1 : 5;
const ROUNDS = smoke ? 1 : 3;
const SEQ = smoke ? 100 : 3000;
const FANOUTS = smoke ? 3 : 30;
const messages = [{ role: 'user', content: 'Say hello in one short sentence.' }];


const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function orcheEnv(simBase: string): Record<string, string> {
  const env: Record<string, string> = { OPENROUTER_BASE_URL: simBase };
  for (const p of BUILTIN_PROVIDERS) {
    env[`PROVIDER_${p.id}_API_KEY`] = `sk-or-v1-bench-${p.id.toLowerCase()}-1`;
    env[`PROVIDER_${p.id}_BACKUP_KEYS`] = [2, 3].map((n) => `sk-or-v1-bench-${p.id.toLowerCase()}-${n}`).join(',');
  }
  return env;
}


async function fanoutOverhead(orche: Proc, simRoot: string, sim: Target): Promise<{ wall: number; slowest: number }> {
  const slowModel = BUILTIN_PROVIDERS[0].model;
  const rule = await fetch(`${simRoot}/_sim/rules`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ match: { model: slowModel }, type: 'delay', delayMs: 200 }) });
  if (!rule.ok) throw new Error(`the simulator refused the delay rule (${rule.status})`);
  try {
    const slow = await sequentialLatency([{ ...sim, name: 'slow leg', bodies: [JSON.stringify({ model: slowModel, messages })] }], FANOUTS, FANOUTS);
    const fan = await sequentialLatency([{ name: 'fanout', url: `${orche.url}/api/chat/fanout`, headers: {}, bodies: [JSON.stringify({ messages })] }], FANOUTS, FANOUTS);
    return { wall: fan.get('fanout')!.mean, slowest: slow.get('slow leg')!.mean };
  } finally {
    await fetch(`${simRoot}/_sim/rules`, { method: 'DELETE' });
  }
}

/** `--profile=<dir>`: CPU profiles of orche and the floor under the same load, summarised per request. */
async function profiles(dir: string): Promise<void> {
  const procs: Proc[] = [];
  try {
    const sim = await startPrinting('scripts/simulator.js', ['--port', '0'], { SIM_CONFIG: '' });
    procs.push(sim);
    const simBase = `${sim.url}/api/v1`;
    const text = await profileRun(
      resolve(dir),
      [
        { name: 'floor', start: (args) => startPrinting('scripts/bench/floor.js', [simBase], {}, args), path: '/v1/chat/completions', bodies: BUILTIN_PROVIDERS.map((p) => JSON.stringify({ model: p.model, messages })) },
        { name: 'orche', start: (args) => startOrche(orcheEnv(simBase), args), path: '/v1/chat/completions', bodies: BUILTIN_PROVIDERS.map((p) => JSON.stringify({ model: p.id.toLowerCase(), messages })) },
      ],
      smoke ? 2_000 : 20_000,
    );
    console.log(`\n${text}`);
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

async function main(): Promise<void> {
  const profileDir = process.argv.find((a) => a.startsWith('--profile='))?.split('=')[1];
  if (profileDir) return profiles(profileDir);
  if (fairnessOnly) return fairness();
  if (!rotationOnly) await basics();
  if (!overheadOnly) await rotation();
}

/** Two clients at 10:1 and 3:1 on scarce capacity, and latency at half of it; its own table. */
async function fairness(): Promise<void> {
  const procs: Proc[] = [];
  try {
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const patienceArg = process.argv.find((a) => a.startsWith('--patience-ms='));
    const patienceMs = patienceArg ? Number(patienceArg.split('=')[1]) : DEFAULT_PATIENCE_MS;
    const runs = await fairnessBench(smoke, patienceMs, redisUrl, procs, (line) => console.error(line));
    const when = new Date().toISOString();
    const text =
      `### Fairness ${when}${smoke ? ' (smoke)' : ''}\n\n` +
      `5 keys in 3 accounts (2+2+1), 5 calls per account per ${smoke ? 2 : 10} s window on whole multiples, ORCHE_MINUTE_MS = the window, ` +
      `two client tokens at 10:1 and 3:1 (light: ${smoke ? 'capacity' : '1 req/s'}), ${smoke ? 4 : 40} s per run, no upstream errors, ORCHE_MAX_WAIT_MS=${patienceMs}. ` +
      "Share = the client's successes over all successes of the run.\n\n" +
      `${fairnessTable(runs)}\n`;
    publish(text);
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

/** Prints a section of results and, with --write, appends it to BENCHMARKS.md. */
function publish(text: string): void {
  console.log(`\n${text}`);
  if (!append) return;
  const file = resolve(__dirname, '..', '..', 'BENCHMARKS.md');
  if (!existsSync(file)) writeFileSync(file, '# Benchmarks\n\nAppended by `npm run bench`; newest last. Targets are from the benchmark issue.\n');
  appendFileSync(file, `\n${text}`);
  console.log(`appended to ${file}`);
}

/** The compressed-minute rotation scenario; its own table. */
async function rotation(): Promise<void> {
  const procs: Proc[] = [];
  try {
    const o = { ...(smoke ? SMOKE : FULL), redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
    const results = await rotationBench(o, procs, (line) => console.error(line));
    const when = new Date().toISOString();
    const text =
      `### Rotation ${when}${smoke ? ' (smoke)' : ''}\n\n` +
      `5 keys in 3 accounts (2+2+1), ${o.perAccount} calls per account per ${o.windowMs / 1000} s window, demand ${o.demand}× capacity, ` +
      `${100 * o.errorRate} % upstream 502 (counted by the simulator, as OpenRouter counts what it admitted), ${o.seconds} s per run. ` +
      `Windows on whole multiples of their length (OpenRouter's), except the runs marked first-call windows (each account's window opens at its first call).\n\n${rotationTable(results)}\n`;
    publish(text);
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

async function basics(): Promise<void> {
  const procs: Proc[] = [];
  try {
    // `--cpu-prof=<dir>`: orche and the floor write CPU profiles there when they stop (BENCHMARKS.md's profiles).
    const profDir = process.argv.find((a) => a.startsWith('--cpu-prof='))?.split('=')[1];
    const profArgs = (name: string) => (profDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(profDir)}`, `--cpu-prof-name=${name}.cpuprofile`] : []);
    const sim = await startPrinting('scripts/simulator.js', ['--port', '0'], { SIM_CONFIG: '' });
    procs.push(sim);
    const simRoot = sim.url;
    const simBase = `${simRoot}/api/v1`;
    const ref = await startPrinting('scripts/bench/reference.js', [simBase]);
    procs.push(ref);
    const bare = await startPrinting('scripts/bench/floor.js', [simBase], {}, profArgs('floor'));
    procs.push(bare);
    const orche = await startOrche(orcheEnv(simBase), profArgs('orche'));
    procs.push(orche);

    const slugs = BUILTIN_PROVIDERS.map((p) => p.id.toLowerCase());
    const direct: Target = { name: 'simulator direct', url: `${simBase}/chat/completions`, headers: { authorization: 'Bearer sk-or-v1-direct' }, bodies: BUILTIN_PROVIDERS.map((p) => JSON.stringify({ model: p.model, messages })), pid: sim.child.pid };
    const floor: Target = { name: 'Express 5 + undici floor', url: `${bare.url}/v1/chat/completions`, headers: {}, bodies: direct.bodies, pid: bare.child.pid };
    const reference: Target = { name: 'Express 5 + axios pass-through', url: `${ref.url}/v1/chat/completions`, headers: {}, bodies: direct.bodies, pid: ref.child.pid };
    const viaOrche: Target = { name: 'orche', url: `${orche.url}/v1/chat/completions`, headers: {}, bodies: slugs.map((model) => JSON.stringify({ model, messages })), pid: orche.child.pid };
    const probe = await fetch(viaOrche.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: viaOrche.bodies[0] });
    if (probe.status === 404) {
      // Before the OpenAI-compatible route existed, the same call went through /api/chat.
      viaOrche.url = `${orche.url}/api/chat`;
      viaOrche.bodies = slugs.map((provider) => JSON.stringify({ provider, messages }));
    }

    const rows: Row[] = [];
    const tp = await throughputRounds([direct, floor, reference, viaOrche], ROUNDS, SECONDS, smoke ? 1 : 2, sim.child.pid);
    const o = tp.get('orche')!;
    const r = tp.get(reference.name)!;
    const f = tp.get(floor.name)!;
    const d = tp.get(direct.name)!;
    const us = (x: number | undefined) => (x === undefined ? '?' : `${fmt(x, 0)} µs`);
    rows.push({ metric: 'RPS at 50 connections (non-streaming)', value: fmt(o.rps), reference: `${fmt(f.rps)} undici floor, ${fmt(r.rps)} axios reference, ${fmt(d.rps)} direct`, target: '≥ 85% of reference', met: o.rps >= 0.85 * r.rps });
    rows.push({ metric: 'orche RPS / reference RPS', value: `${fmt((100 * o.rps) / r.rps, 1)}%`, reference: '', target: '≥ 85%', met: o.rps >= 0.85 * r.rps });
    rows.push({ metric: 'orche RPS / undici floor RPS', value: `${fmt(o.rps / f.rps, 2)}×`, reference: `${fmt(f.rps)} floor`, target: '≥ 0.8×', met: o.rps >= 0.8 * f.rps });
    rows.push({ metric: 'server CPU per request at 50 connections', value: us(o.cpuUsPerRequest), reference: `${us(f.cpuUsPerRequest)} floor, ${us(r.cpuUsPerRequest)} reference, ${us(d.cpuUsPerRequest)} simulator direct`, target: '', met: null });
    // The simulator serves `direct` many times faster than the floor, and is far from a full core meanwhile.
    rows.push({ metric: "simulator's CPU during the floor's and orche's rounds", value: `${fmt(100 * (o.simCpu ?? 0))}% of a core`, reference: `${fmt(100 * (f.simCpu ?? 0))}% for the floor; it serves ${fmt(d.rps / f.rps, 1)}× the floor's RPS when called direct`, target: 'not the bottleneck', met: (f.simCpu ?? 1) < 0.7 && d.rps > 2 * f.rps });
    rows.push({ metric: 'p99 latency at 50 connections', value: `${o.p99} ms`, reference: `${r.p99} ms reference, ${f.p99} ms floor`, target: '≤ 1.2× reference', met: o.p99 <= 1.2 * r.p99 });
    rows.push({ metric: 'errors and non-2xx during the runs', value: String(o.errors), reference: `${r.errors} reference, ${f.errors} floor, ${d.errors} direct`, target: '0', met: o.errors === 0 });

    const lat = await sequentialLatency([direct, floor, viaOrche], SEQ);
    const ld = lat.get(direct.name)!;
    const lf = lat.get(floor.name)!;
    const lo = lat.get('orche')!;
    const added = lo.mean - ld.mean;
    const floorAdded = lf.mean - ld.mean;
    const addedP50 = lo.p50 - ld.p50;
    const floorAddedP50 = lf.p50 - ld.p50;
    rows.push({ metric: 'added latency at 1 connection (mean)', value: `${fmt(added, 3)} ms`, reference: `${fmt(ld.mean, 3)} ms direct, ${fmt(lf.mean, 3)} ms floor (+${fmt(floorAdded, 3)}), ${fmt(lo.mean, 3)} ms orche`, target: '≤ 0.7 ms', met: added <= 0.7 });
    rows.push({ metric: 'added latency at 1 connection (p50)', value: `${fmt(addedP50, 3)} ms`, reference: `floor +${fmt(floorAddedP50, 3)} ms`, target: '', met: null });
    // Both the mean and the median must hold: the stricter reading of "added latency".
    const latRatio = Math.max(added / floorAdded, addedP50 / floorAddedP50);
    rows.push({ metric: "orche's added latency / the floor's (1 connection)", value: `${fmt(added / floorAdded, 2)}× mean, ${fmt(addedP50 / floorAddedP50, 2)}× p50`, reference: '', target: '≤ 1.3× (both)', met: latRatio <= 1.3 });

    const streamBody = (model: string) => JSON.stringify({ model, messages, stream: true });
    const directStream: Target = { ...direct, name: 'direct stream', bodies: BUILTIN_PROVIDERS.map((p) => streamBody(p.model)) };
    const floorStream: Target = { ...floor, name: 'floor stream', bodies: directStream.bodies };
    const orcheStream: Target = { ...viaOrche, name: 'orche stream', url: `${orche.url}/v1/chat/completions`, bodies: slugs.map(streamBody) };
    const st = await streamTimings([directStream, floorStream, orcheStream], smoke ? 20 : 400);
    const sd = st.get('direct stream')!;
    const sf = st.get('floor stream')!;
    const so = st.get('orche stream')!;
    rows.push({ metric: 'streaming: time to first byte added (median)', value: `${fmt(so.ttfb - sd.ttfb, 3)} ms`, reference: `${fmt(sd.ttfb, 3)} ms direct, ${fmt(sf.ttfb, 3)} ms floor (+${fmt(sf.ttfb - sd.ttfb, 3)}), ${fmt(so.ttfb, 3)} ms orche`, target: '≤ 1 ms', met: so.ttfb - sd.ttfb <= 1 });
    rows.push({ metric: 'streaming: total time added (median, 8 events)', value: `${fmt(so.total - sd.total, 3)} ms`, reference: `${fmt(sd.total, 3)} ms direct, ${fmt(sf.total, 3)} ms floor, ${fmt(so.total, 3)} ms orche`, target: '', met: null });

    const CHUNKS = smoke ? 100 : 1000;
    const manyChunks = (model: string) => JSON.stringify({ model, messages, stream: true, sim_chunks: CHUNKS, sim_chunk_bytes: 64 });
    const kimi = BUILTIN_PROVIDERS.find((p) => p.id === 'KIMI') ?? BUILTIN_PROVIDERS[0];
    const cc = await chunkCosts(
      [directStream, floorStream, orcheStream],
      new Map([
        [directStream.name, manyChunks(kimi.model)],
        [floorStream.name, manyChunks(kimi.model)],
        [orcheStream.name, manyChunks(kimi.id.toLowerCase())],
      ]),
      CHUNKS,
      smoke ? 3 : 40,
    );
    const perChunk = (name: string) => (1000 * (cc.get(name)!.total - cc.get(directStream.name)!.total)) / CHUNKS;
    rows.push({ metric: `streaming: relay time added per chunk (${CHUNKS} × 64 B, median)`, value: `${fmt(perChunk(orcheStream.name), 2)} µs`, reference: `${fmt(perChunk(floorStream.name), 2)} µs floor`, target: '', met: null });
    rows.push({ metric: 'streaming: server CPU per relayed chunk', value: us(cc.get(orcheStream.name)!.cpuUsPerChunk).replace(' µs', ''), reference: `${us(cc.get(floorStream.name)!.cpuUsPerChunk).replace(' µs', '')} floor (µs)`, target: '', met: null });
    if (overheadOnly) return print(rows);

    const big = JSON.stringify({ model: 'kimi', messages, stream: true, sim_chunks: 2560, sim_chunk_bytes: 2048 });
    const mem = await relayMemory(orche, { ...viaOrche, url: `${orche.url}/v1/chat/completions` }, big, smoke ? 1 : 3);
    rows.push({
      metric: `RSS growth while relaying a ${fmt(mem.bytes / 1048576, 1)} MB stream`,
      value: `${fmt(mem.peakGrowth / 1048576, 1)} MB`,
      reference: `baseline RSS ${fmt(mem.baselineRss / 1048576, 1)} MB, relayed in ${fmt(mem.seconds, 2)} s`,
      target: '< 10 MB',
      met: mem.peakGrowth < 10 * 1048576,
    });

    const fan = await fanoutOverhead(orche, simRoot, direct);
    rows.push({ metric: 'fan-out wall time − slowest leg (6 providers, one +200 ms)', value: `${fmt(fan.wall - fan.slowest, 2)} ms`, reference: `${fmt(fan.wall, 1)} ms wall, ${fmt(fan.slowest, 1)} ms slowest leg`, target: '≤ 2 ms', met: fan.wall - fan.slowest <= 2 });

    for (const n of [6, 100, 1000]) {
      const us = await pickCost(new MemoryStore(), planOf(n), smoke ? 20_000 : 500_000);
      rows.push({ metric: `key pick, ${n} keys (memory store)`, value: `${fmt(us, 3)} µs`, reference: '', target: n === 1000 ? '≤ 2 µs' : '', met: n === 1000 ? us <= 2 : null });
    }

    rows.push(...(await redisFigures({ simBase, memoryOrche: viaOrche, env: orcheEnv(simBase), seconds: SECONDS, rounds: ROUNDS, picks: smoke ? 2_000 : 20_000, procs })));

    print(rows);
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

function table(rows: Row[]): string {
  const head = '| metric | orche | compared with | target | met |\n|---|---|---|---|---|';
  return [head, ...rows.map((r) => `| ${r.metric} | ${r.value} | ${r.reference} | ${r.target} | ${r.met === null ? '' : r.met ? 'yes' : 'no'} |`)].join('\n');
}

function print(rows: Row[]): void {
  const when = new Date().toISOString();
  const header = `### ${when}${smoke ? ' (smoke)' : ''}\n\nNode ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, ${SECONDS} s × ${ROUNDS} alternating rounds per throughput figure.\n`;
  publish(`${header}\n${table(rows)}\n`);
}

// `npm run bench -- --soak`: the long memory and event-loop run (scripts/soak.ts) instead.
(process.argv.includes('--soak') ? import('./soak').then((m) => m.soak(process.argv.slice(2))) : main()).catch((err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
