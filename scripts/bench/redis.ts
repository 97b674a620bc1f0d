/** Redis mode: orche's throughput with its state in Redis, against memory mode, and the pick round trip. */
import { randomBytes } from 'node:crypto';
import { RedisStore } from '../../providers/store/redis';
import { pickCost, planOf } from './pick';
import { type Row, type Target, throughputRounds } from './measure';
import { type Proc, startOrche } from './processes';

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const quiet = { info: () => undefined, warn: () => undefined };

export interface RedisBenchOptions {
  simBase: string;
  memoryOrche: Target;
  env: Record<string, string>;
  seconds: number;
  rounds: number;
  picks: number;
  procs: Proc[];
}

export async function redisFigures(o: RedisBenchOptions): Promise<Row[]> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  // Every key orche writes expires on its own; a fresh prefix keeps this run apart from any other.
  const prefix = `orche-bench:${randomBytes(4).toString('hex')}:`;
  const probe = new RedisStore({ url, prefix, logger: quiet });
  const up = await probe.connected();
  if (!up) {
    await probe.close();
    return [{ metric: 'Redis mode', value: 'not measured', reference: `no Redis answers at ${url}`, target: '', met: null }];
  }
  const rows: Row[] = [];
  for (const n of [6, 100, 1000]) {
    const us = await pickCost(probe, planOf(n), o.picks);
    rows.push({ metric: `key pick, ${n} keys (Redis store, one round trip)`, value: `${fmt(us, 1)} µs`, reference: 'sequential, local Redis', target: '', met: null });
  }
  await probe.close();

  const orche = await startOrche({ ...o.env, REDIS_URL: url, ORCHE_REDIS_PREFIX: prefix });
  o.procs.push(orche);
  const viaRedis: Target = { ...o.memoryOrche, name: 'orche (Redis)', url: o.memoryOrche.url.replace(/^http:\/\/[^/]+/, orche.url) };
  const tp = await throughputRounds([o.memoryOrche, viaRedis], o.rounds, o.seconds, 1);
  const mem = tp.get(o.memoryOrche.name)!;
  const red = tp.get(viaRedis.name)!;
  rows.push({ metric: 'Redis mode RPS at 50 connections', value: fmt(red.rps), reference: `${fmt(mem.rps)} memory mode (${fmt((100 * red.rps) / mem.rps, 1)}%)`, target: '≥ 70% of memory mode', met: red.rps >= 0.7 * mem.rps });
  return rows;
}
