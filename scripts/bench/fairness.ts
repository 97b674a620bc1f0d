/**
 * The fairness benchmark (`npm run bench -- --fairness`): the rotation scenario's keys
 * (5 keys in 3 accounts, each account 5 calls per 10 s window on whole multiples, the simulator
 * answering OpenRouter's free-models-per-min 429; ORCHE_MINUTE_MS=10000), two client tokens at
 * 10:1 and at 3:1 demand (10 and 1, 3 and 1 requests per second) for 40 s, on 1 instance and on 3
 * instances sharing one Redis; then one client at half of capacity for the latency of served
 * requests. Each setup runs 10:1 once cold (a fresh orche: no limit learned, its first window
 * unpaced), then 10:1 and 3:1 on the limits that run taught. The metric is each client's share of everything served (docs/design.md#pacing-and-fairness), not only while it
 * waited. Numbers, not assertions. Counts are what matter: the machine's cores are shared, so
 * latencies are noisy.
 */
import { startOrche, startPrinting, type Proc } from './processes';
import { capacity, type Client, dropPrefix, drive, FULL, idealServed, orcheEnv, patience, type RotationOptions, simConfig, SMOKE } from './rotation';

export interface FairRun {
  name: string;
  /** Per client: served, sent. */
  clients: Array<{ name: string; served: number; sent: number; share: number }>;
  served: number;
  ideal: number;
  upstream429: number;
  upstreamCalls: number;
  /** Latency of served requests, ms. */
  p50: number;
  p99: number;
}

/** ORCHE_MAX_WAIT_MS's default: the setup names no other. */
export const DEFAULT_PATIENCE_MS = 3000;

const fairOptions = (smoke: boolean, patienceMs: number): RotationOptions => ({ ...(smoke ? SMOKE : FULL), errorRate: 0, patienceMs });

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

async function run(name: string, simRoot: string, urls: string[], clients: Client[], o: RotationOptions): Promise<FairRun> {
  // A fresh window, so that what a previous run used of the current one counts for neither side.
  await new Promise((r) => setTimeout(r, o.windowMs - (Date.now() % o.windowMs) + 20));
  await post(`${simRoot}/_sim/reset`, {});
  const before = ((await (await fetch(`${simRoot}/_sim/calls?since=0`)).json()) as { calls: Array<{ seq: number }> }).calls.at(-1)?.seq ?? 0;
  const r = await drive(urls, clients, o.seconds);
  const calls = ((await (await fetch(`${simRoot}/_sim/calls?since=${before}`)).json()) as { calls: Array<{ status: number }> }).calls;
  const ok = r.done.filter((d) => d.status === 200);
  const arrivals = clients.flatMap((c) => Array.from({ length: r.sent[c.name] }, (_, i) => r.started + i * (1000 / c.perSecond)));
  return {
    name,
    clients: clients.map((c) => {
      const served = ok.filter((d) => d.client === c.name).length;
      return { name: c.name, served, sent: r.sent[c.name], share: ok.length === 0 ? 0 : served / ok.length };
    }),
    served: ok.length,
    ideal: idealServed(arrivals, o.windowMs, capacity(o), patience(o)),
    upstream429: calls.filter((c) => c.status === 429).length,
    upstreamCalls: calls.length,
    p50: pct(ok.map((d) => d.at - d.sentAt), 0.5),
    p99: pct(ok.map((d) => d.at - d.sentAt), 0.99),
  };
}

export function fairnessTable(runs: FairRun[]): string {
  const head = "| run | served per client (served / sent) | each client's share of everything served | served / ideal | upstream 429s / calls | latency of served p50 / p99 |\n|---|---|---|---|---|---|";
  const rows = runs.map((r) => {
    const per = r.clients.map((c) => `${c.name} ${c.served}/${c.sent}`).join(', ');
    const shares = r.clients.map((c) => `${c.name} ${c.share.toFixed(3)}`).join(', ');
    return `| ${r.name} | ${per} | ${shares} | ${r.served} / ${r.ideal} (${(r.ideal === 0 ? 0 : r.served / r.ideal).toFixed(3)}) | ${r.upstream429} / ${r.upstreamCalls} | ${r.p50} / ${r.p99} ms |`;
  });
  return [head, ...rows].join('\n');
}

/** Every scenario; `procs` collects children so the caller stops them. */
export async function fairnessBench(smoke: boolean, patienceMs: number, redisUrl: string | undefined, procs: Proc[], log: (line: string) => void = () => {}): Promise<FairRun[]> {
  const o = fairOptions(smoke, patienceMs);
  const sim = await startPrinting('scripts/simulator.js', ['--port', '0', '--config', simConfig(o)]);
  procs.push(sim);
  const simBase = `${sim.url}/api/v1`;
  // Capacity per second: 15 calls per 10 s window in the full run.
  const cap = (capacity(o) * 1000) / o.windowMs;
  const light = smoke ? cap : 1;
  const pair = (ratio: number): Client[] => [
    { name: 'heavy', token: 'bench-client-heavy', perSecond: ratio * light },
    { name: 'light', token: 'bench-client-light', perSecond: light },
  ];
  const runs: FairRun[] = [];
  const one = await startOrche(orcheEnv(simBase, o));
  procs.push(one);
  // A fresh orche knows no limit until the first 429 teaches it: its first window cannot be paced.
  // That run is shown on its own; the others run on the limits it taught, as a running orche has them.
  log('fairness: 10:1, 1 instance, cold');
  runs.push(await run('10:1, 1 instance, cold (no limit learned yet)', sim.url, [one.url], pair(10), o));
  for (const ratio of [10, 3]) {
    log(`fairness: ${ratio}:1, 1 instance`);
    runs.push(await run(`${ratio}:1, 1 instance`, sim.url, [one.url], pair(ratio), o));
  }
  log('fairness: half of capacity, 1 instance');
  runs.push(await run('half of capacity, 1 instance', sim.url, [one.url], [{ name: 'client', token: 'bench-client-heavy', perSecond: cap / 2 }], o));
  await one.stop();
  if (redisUrl) {
    const prefix = `orche-bench-fair-${process.pid}-${Date.now()}:`;
    const three: Proc[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await startOrche(orcheEnv(simBase, o, { REDIS_URL: redisUrl, ORCHE_REDIS_PREFIX: prefix }));
      procs.push(p);
      three.push(p);
    }
    log('fairness: 10:1, 3 instances on Redis, cold');
    runs.push(await run('10:1, 3 instances on Redis, cold (no limit learned yet)', sim.url, three.map((p) => p.url), pair(10), o));
    for (const ratio of [10, 3]) {
      log(`fairness: ${ratio}:1, 3 instances on Redis`);
      runs.push(await run(`${ratio}:1, 3 instances on Redis`, sim.url, three.map((p) => p.url), pair(ratio), o));
    }
    log('fairness: half of capacity, 3 instances on Redis');
    runs.push(await run('half of capacity, 3 instances on Redis', sim.url, three.map((p) => p.url), [{ name: 'client', token: 'bench-client-heavy', perSecond: cap / 2 }], o));
    for (const p of three) await p.stop();
    await dropPrefix(redisUrl, prefix);
  }
  return runs;
}
