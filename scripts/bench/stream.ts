/** Streaming figures: time to first byte and total time, and orche's memory while relaying a large stream. */
import http from 'node:http';
import { cpuMsOf, rssOf, type Proc } from './processes';
import { median, post, type Target } from './measure';

export interface StreamTiming {
  ttfb: number;
  total: number;
}

/** Sequential streaming calls per target, alternating; medians of first-byte and total times (ms). */
export async function streamTimings(targets: Target[], perTarget: number): Promise<Map<string, StreamTiming>> {
  const agents = new Map(targets.map((t) => [t.name, new http.Agent({ keepAlive: true, maxSockets: 1 })]));
  const samples = new Map(targets.map((t) => [t.name, { ttfb: [] as number[], total: [] as number[] }]));
  for (let i = 0; i < perTarget; i++) {
    for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
      const r = await post(agents.get(t.name)!, t, t.bodies[i % t.bodies.length]);
      if (r.status !== 200) throw new Error(`${t.name} answered ${r.status} to a stream`);
      samples.get(t.name)!.ttfb.push(r.firstByteMs);
      samples.get(t.name)!.total.push(r.ms);
    }
  }
  for (const a of agents.values()) a.destroy();
  return new Map([...samples].map(([name, s]) => [name, { ttfb: median(s.ttfb), total: median(s.total) }]));
}

export interface RelayMemory {
  bytes: number;
  baselineRss: number;
  peakGrowth: number;
  seconds: number;
}

/**
 * Relays one large stream through orche while sampling orche's RSS every 5 ms. The growth must stay
 * flat: the relay holds a chunk at a time, never the whole response.
 */
export async function relayMemory(orche: Proc, target: Target, body: string, runs: number): Promise<RelayMemory> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const pid = orche.child.pid!;
  // Warm-up relays, so that the baseline already holds the JIT's code and the sockets' buffers.
  for (let i = 0; i < 2; i++) await post(agent, target, body);
  let peakGrowth = 0;
  let baselineRss = 0;
  let bytes = 0;
  let seconds = 0;
  for (let i = 0; i < runs; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const baseline = rssOf(pid);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 5);
    const r = await post(agent, target, body);
    clearInterval(sampler);
    peak = Math.max(peak, rssOf(pid));
    if (r.status !== 200) throw new Error(`the large stream answered ${r.status}`);
    bytes = r.bytes;
    seconds = r.ms / 1000;
    baselineRss = baseline;
    peakGrowth = Math.max(peakGrowth, peak - baseline);
  }
  agent.destroy();
  return { bytes, baselineRss, peakGrowth, seconds };
}

export interface ChunkCost {
  /** Median wall time of one many-chunk stream (ms). */
  total: number;
  /** CPU the serving process spent per relayed chunk (µs), when its pid is known. */
  cpuUsPerChunk?: number;
}

/**
 * What relaying one SSE chunk costs: the same stream of `chunks` small content chunks through each
 * target, alternating, `runs` times. Wall time added per chunk is (total − direct total) / chunks;
 * the serving process's CPU over all runs, divided by the chunks relayed, is the CPU per chunk.
 */
export async function chunkCosts(targets: Target[], bodies: Map<string, string>, chunks: number, runs: number): Promise<Map<string, ChunkCost>> {
  const agents = new Map(targets.map((t) => [t.name, new http.Agent({ keepAlive: true, maxSockets: 1 })]));
  const totals = new Map(targets.map((t) => [t.name, [] as number[]]));
  for (const t of targets) await post(agents.get(t.name)!, t, bodies.get(t.name)!); // warm-up
  // Each server works only for its own target here, so its CPU over the whole loop is its relays'.
  const cpu0 = new Map(targets.map((t) => [t.name, t.pid ? cpuMsOf(t.pid) : 0]));
  for (let i = 0; i < runs; i++) {
    for (const t of i % 2 === 0 ? targets : [...targets].reverse()) {
      const r = await post(agents.get(t.name)!, t, bodies.get(t.name)!);
      if (r.status !== 200) throw new Error(`${t.name} answered ${r.status} to a ${chunks}-chunk stream`);
      totals.get(t.name)!.push(r.ms);
    }
  }
  for (const a of agents.values()) a.destroy();
  const perChunk = (t: Target) => (t.pid ? ((cpuMsOf(t.pid) - cpu0.get(t.name)!) * 1000) / (runs * chunks) : undefined);
  return new Map(targets.map((t) => [t.name, { total: median(totals.get(t.name)!), cpuUsPerChunk: perChunk(t) }]));
}
