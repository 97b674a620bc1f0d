import type { PoolEmitter, PoolEvents } from '../../providers/keys/events';
import { clientOf } from '../../providers/dispatch/requestClient';
import { minuteWindow } from '../../providers/limits/windows';

/** Per-minute buckets kept for a day, in a ring. */
const SLOTS = 1440;
/** Fields of one bucket, in a flat Float64Array: [minute, calls, successes, rate_limited, failures, tokens, latency_total, cost]. */
const FIELDS = 8;
const [MINUTE, CALLS, SUCCESSES, RATE_LIMITED, FAILURES, TOKENS, LATENCY, COST] = [0, 1, 2, 3, 4, 5, 6, 7];

export interface UsageWindow {
  calls: number;
  successes: number;
  rate_limited: number;
  failures: number;
  tokens: number;
  /** Sum of `usage.cost` (USD) of the calls that reported it. */
  cost_usd: number;
  mean_latency_ms: number | null;
}

/** Windows in whole clock minutes, counting the current one: as OpenRouter counts its per-minute limits. */
export const WINDOWS = { minute: 1, hour: 60, day: SLOTS } as const;
export type WindowName = keyof typeof WINDOWS;

/** The same outcome kinds the key pool counts (docs/design.md#the-outcome-table key-status counters). */
function field(kind: string): number | null {
  switch (kind) {
    case 'success':
      return SUCCESSES;
    case 'cool':
    case 'congested':
    case 'edge':
      return RATE_LIMITED;
    case 'disable':
    case 'retry':
      return FAILURES;
    default:
      return null; // client_error (the request's own fault) or unservable (no key could serve it): not the key's
  }
}

/** One key's day of per-minute buckets. */
class Ring {
  private readonly data = new Float64Array(SLOTS * FIELDS);

  constructor() {
    for (let i = 0; i < SLOTS; i++) this.data[i * FIELDS + MINUTE] = -1;
  }

  /** The bucket of the clock minute `at` falls in, emptied first when it still holds an older minute. */
  private bucket(at: number): number {
    const minute = minuteWindow(at);
    const base = (minute % SLOTS) * FIELDS;
    if (this.data[base + MINUTE] !== minute) {
      this.data.fill(0, base, base + FIELDS);
      this.data[base + MINUTE] = minute;
    }
    return base;
  }

  add(e: PoolEvents['outcome']): void {
    const base = this.bucket(e.at);
    this.data[base + CALLS]++;
    const f = field(e.kind);
    if (f !== null) this.data[base + f]++;
    this.data[base + LATENCY] += e.latencyMs;
  }

  addUsage(e: PoolEvents['usage']): void {
    const base = this.bucket(e.at);
    this.data[base + TOKENS] += e.tokens;
    this.data[base + COST] += e.cost;
  }

  /** Sums the buckets of the last `minutes` clock minutes, the current one included. */
  sum(nowMinute: number, minutes: number, into: Float64Array): void {
    for (let m = nowMinute - minutes + 1; m <= nowMinute; m++) {
      const base = (((m % SLOTS) + SLOTS) % SLOTS) * FIELDS;
      if (this.data[base + MINUTE] !== m) continue;
      for (let f = CALLS; f < FIELDS; f++) into[f] += this.data[base + f];
    }
  }

  /** Calls per minute for the last `minutes` minutes, oldest first. */
  series(nowMinute: number, minutes: number): number[] {
    const out: number[] = [];
    for (let m = nowMinute - minutes + 1; m <= nowMinute; m++) {
      const base = (((m % SLOTS) + SLOTS) % SLOTS) * FIELDS;
      out.push(this.data[base + MINUTE] === m ? this.data[base + CALLS] : 0);
    }
    return out;
  }
}

/** A sum of costs without the float noise of adding many small numbers (1e-12 USD is far below any price). */
function usd(n: number): number {
  return Math.round(n * 1e12) / 1e12;
}

function toWindow(sum: Float64Array): UsageWindow {
  const calls = sum[CALLS];
  return {
    calls,
    successes: sum[SUCCESSES],
    rate_limited: sum[RATE_LIMITED],
    failures: sum[FAILURES],
    tokens: sum[TOKENS],
    cost_usd: usd(sum[COST]),
    mean_latency_ms: calls > 0 ? Math.round(sum[LATENCY] / calls) : null,
  };
}

export type UsageWindows = Record<WindowName, UsageWindow>;

export type CostWindows = Record<WindowName, number>;

/** Minute buckets for the last hour, clock-hour buckets for the day: about 1 KB per id. */
class CostBuckets {
  private readonly minutes = new Float64Array(60);
  private readonly minuteOf = new Float64Array(60).fill(-1);
  private readonly hours = new Float64Array(24);
  private readonly hourOf = new Float64Array(24).fill(-1);

  add(cost: number, at: number): void {
    const minute = minuteWindow(at);
    const hour = Math.floor(minute / 60);
    const m = minute % 60;
    const h = hour % 24;
    if (this.minuteOf[m] !== minute) [this.minutes[m], this.minuteOf[m]] = [0, minute];
    if (this.hourOf[h] !== hour) [this.hours[h], this.hourOf[h]] = [0, hour];
    this.minutes[m] += cost;
    this.hours[h] += cost;
  }

  windows(now: number): CostWindows {
    const minute = minuteWindow(now);
    const hour = Math.floor(minute / 60);
    let lastHour = 0;
    let day = 0;
    for (let i = 0; i < 60; i++) if (this.minuteOf[i] > minute - 60 && this.minuteOf[i] <= minute) lastHour += this.minutes[i];
    for (let i = 0; i < 24; i++) if (this.hourOf[i] > hour - 24 && this.hourOf[i] <= hour) day += this.hours[i];
    return { minute: usd(this.minuteOf[minute % 60] === minute ? this.minutes[minute % 60] : 0), hour: usd(lastHour), day: usd(day) };
  }
}

/** Users and clients whose cost is kept at once; the least recently charged is forgotten first. */
export const MAX_COST_IDS = 10_000;

/**
 * Cost per client identity and per end user (their fair key, `<client>|u:<name>`), from the
 * client a call was dispatched for. Bounded like the end users: naming a new user per request
 * cannot grow memory without end. The day is the last 24 clock hours, the current one included.
 */
class CostTally {
  private readonly ids = new Map<string, CostBuckets>();

  constructor(private readonly max = MAX_COST_IDS) {}

  add(fairKey: string, cost: number, at: number): void {
    const client = clientOf(fairKey);
    this.bucket(client).add(cost, at);
    if (client !== fairKey) this.bucket(fairKey).add(cost, at);
  }

  private bucket(id: string): CostBuckets {
    let b = this.ids.get(id);
    if (b) this.ids.delete(id); // re-inserted last: most recently charged
    else b = new CostBuckets();
    this.ids.set(id, b);
    if (this.ids.size > this.max) this.ids.delete(this.ids.keys().next().value!);
    return b;
  }

  windows(id: string, now: number): CostWindows {
    return this.ids.get(id)?.windows(now) ?? { minute: 0, hour: 0, day: 0 };
  }

  /** Client identities (not end users), most recently charged first. */
  clients(): string[] {
    return [...this.ids.keys()].reverse().filter((id) => clientOf(id) === id);
  }
}

/** Time-bucketed usage per provider and key, fed by the pool's 'outcome' and 'usage' events; cost also per client and end user. */
export class UsageTracker {
  private readonly rings = new Map<string, Ring>();
  private readonly costs: CostTally;

  /** `maxCostIds`: clients and end users whose cost is kept at once. */
  constructor(events: PoolEmitter, maxCostIds = MAX_COST_IDS) {
    this.costs = new CostTally(maxCostIds);
    events.on('outcome', (e) => this.ring(e.provider, e.keyId).add(e));
    events.on('usage', (e) => {
      this.ring(e.provider, e.keyId).addUsage(e);
      if (e.cost > 0 && e.client !== undefined) this.costs.add(e.client, e.cost, e.at);
    });
  }

  /** Cost of one client identity or one end user's fair key, over the three windows. */
  costOf(id: string, now: number): CostWindows {
    return this.costs.windows(id, now);
  }

  /** Every client identity with cost in the last day, most recently charged first. */
  clientCosts(now: number): Array<{ client: string; cost_usd: CostWindows }> {
    return this.costs
      .clients()
      .map((client) => ({ client, cost_usd: this.costs.windows(client, now) }))
      .filter((c) => c.cost_usd.day > 0);
  }

  private ring(provider: string, keyId: string): Ring {
    const id = `${provider}\u0000${keyId}`;
    let ring = this.rings.get(id);
    if (!ring) this.rings.set(id, (ring = new Ring()));
    return ring;
  }

  /** Frees the buckets of keys no longer configured (a reload removed them). */
  retain(keys: Array<{ provider: string; keyId: string }>): void {
    const keep = new Set(keys.map((k) => `${k.provider}\u0000${k.keyId}`));
    for (const id of this.rings.keys()) if (!keep.has(id)) this.rings.delete(id);
  }

  /** `provider/keyId` of every key with usage kept (about 80 KB each). */
  tracked(): string[] {
    return [...this.rings.keys()].map((id) => id.replace('\u0000', '/'));
  }

  /** Every window for one provider's keys, and their totals. */
  report(provider: string, keyIds: string[], now: number, seriesMinutes: number) {
    const nowMinute = minuteWindow(now);
    const totals = Object.fromEntries(Object.keys(WINDOWS).map((w) => [w, new Float64Array(FIELDS)])) as Record<WindowName, Float64Array>;
    const providerSeries = new Array<number>(seriesMinutes).fill(0);
    const keys = keyIds.map((id) => {
      const ring = this.rings.get(`${provider}\u0000${id}`);
      const windows = {} as UsageWindows;
      for (const [name, minutes] of Object.entries(WINDOWS) as Array<[WindowName, number]>) {
        const sum = new Float64Array(FIELDS);
        ring?.sum(nowMinute, minutes, sum);
        for (let f = CALLS; f < FIELDS; f++) totals[name][f] += sum[f];
        windows[name] = toWindow(sum);
      }
      const series = ring ? ring.series(nowMinute, seriesMinutes) : new Array<number>(seriesMinutes).fill(0);
      series.forEach((n, i) => (providerSeries[i] += n));
      return { id, ...windows, calls_per_minute: series };
    });
    const windows = {} as UsageWindows;
    for (const name of Object.keys(WINDOWS) as WindowName[]) windows[name] = toWindow(totals[name]);
    return { provider, ...windows, calls_per_minute: providerSeries, keys };
  }
}
