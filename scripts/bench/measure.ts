/** Load generation and timing helpers for the benchmark. */
import http from 'node:http';
import autocannon from 'autocannon';
import { cpuMsOf } from './processes';

export interface Throughput {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU the serving process spent per request (µs), when its pid is known. */
  cpuUsPerRequest?: number;
  /** Share of one core the simulator used meanwhile (0–1), when its pid is watched. */
  simCpu?: number;
}

export interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  bodies: string[];
  /** The process that serves this target, for its CPU per request. */
  pid?: number;
}

/**
 * Requests per second and latency at `connections` for `seconds`, cycling through the bodies; with
 * `simPid`, how busy the simulator was meanwhile (below one core, it is not what limits the target).
 */
export async function throughput(t: Target, connections: number, seconds: number, simPid?: number): Promise<Throughput> {
  const cpu0 = t.pid ? cpuMsOf(t.pid) : 0;
  const sim0 = simPid ? cpuMsOf(simPid) : 0;
  const started = process.hrtime.bigint();
  const result = await autocannon({
    url: t.url,
    connections,
    duration: seconds,
    requests: t.bodies.map((body) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body })),
  });
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
    cpuUsPerRequest: t.pid && result.requests.total ? ((cpuMsOf(t.pid) - cpu0) * 1000) / result.requests.total : undefined,
    simCpu: simPid ? (cpuMsOf(simPid) - sim0) / wallMs : undefined,
  };
}

export interface Latency {
  mean: number;
  p50: number;
  p99: number;
}

function summarize(ms: number[]): Latency {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { mean: ms.reduce((a, b) => a + b, 0) / ms.length, p50: at(0.5), p99: at(0.99) };
}

/** One request at a time over one keep-alive connection: sub-millisecond timing with hrtime. */
export function post(agent: http.Agent, t: Target, body: string): Promise<{ ms: number; status: number; bytes: number; firstByteMs: number }> {
  const url = new URL(t.url);
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let firstByteMs = 0;
    let bytes = 0;
    const req = http.request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...t.headers } },
      (res) => {
        res.on('data', (c: Buffer) => {
          if (bytes === 0) firstByteMs = Number(process.hrtime.bigint() - start) / 1e6;
          bytes += c.length;
        });
        res.on('end', () => resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, status: res.statusCode ?? 0, bytes, firstByteMs }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sequential latency for several targets, in alternating batches so drift hits all alike. */
export async function sequentialLatency(targets: Target[], perTarget: number, batch = 250): Promise<Map<string, Latency>> {
  const samples = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const agents = new Map(targets.map((t) => [t.name, new http.Agent({ keepAlive: true, maxSockets: 1 })]));
  for (let done = 0; done < perTarget; done += batch) {
    for (const t of done % (2 * batch) === 0 ? targets : [...targets].reverse()) {
      for (let i = 0; i < Math.min(batch, perTarget - done); i++) {
        const r = await post(agents.get(t.name)!, t, t.bodies[i % t.bodies.length]);
        if (r.status !== 200) throw new Error(`${t.name} answered ${r.status}`);
        samples.get(t.name)!.push(r.ms);
      }
    }
  }
  for (const a of agents.values()) a.destroy();
  return new Map([...samples].map(([name, ms]) => [name, summarize(ms)]));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export interface Row {
  metric: string;
  value: string;
  reference: string;
  target: string;
  met: boolean | null;
}

/** Median throughput per target over alternating rounds (ABC, CBA, …), after a warm-up of each. */
export async function throughputRounds(targets: Target[], rounds: number, seconds: number, warmupSeconds: number, simPid?: number): Promise<Map<string, Throughput>> {
  const runs = new Map<string, Throughput[]>(targets.map((t) => [t.name, []]));
  for (const t of targets) await throughput(t, 50, warmupSeconds); // JIT, sockets
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 === 0 ? targets : [...targets].reverse()) runs.get(t.name)!.push(await throughput(t, 50, seconds, simPid));
  }
  const medianOf = (rs: Throughput[], pick: (x: Throughput) => number | undefined) => {
    const xs = rs.map(pick).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  return new Map(
    [...runs].map(([name, rs]) => [
      name,
      {
        rps: median(rs.map((x) => x.rps)),
        p50: median(rs.map((x) => x.p50)),
        p99: median(rs.map((x) => x.p99)),
        errors: rs.reduce((a, x) => a + x.errors, 0),
        cpuUsPerRequest: medianOf(rs, (x) => x.cpuUsPerRequest),
        simCpu: medianOf(rs, (x) => x.simCpu),
      },
    ]),
  );
}
