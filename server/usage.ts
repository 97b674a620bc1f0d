import type { PoolEmitter, PoolEvents } from '../providers/keys/events';

const MINUTE_MS = 60_000;
/** Per-minute buckets kept for a day, in a ring. */
const SLOTS = 1440;
/** Fields of one bucket, in a flat Float64Array: [minute, calls, successes, rate_limited, failures, tokens, latency_total]. */
const FIELDS = 7;
const [MINUTE, CALLS, SUCCESSES, RATE_LIMITED, FAILURES, TOKENS, LATENCY] = [0, 1, 2, 3, 4, 5, 6];

export interface UsageWindow {
  calls: number;
  successes: number;
  rate_limited: number;
  failures: number;
  tokens: number;
  mean_latency_ms: number | null;
}

/** Windows in whole clock minutes, counting the current one: as OpenRouter counts its per-minute limits. */
export const WINDOWS = { minute: 1, hour: 60, day: SLOTS } as const;
export type WindowName = keyof typeof WINDOWS;

/** The same outcome kinds the key pool counts (SPEC §3 key-status counters). */
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
      return null; // client_error: the client's fault, not the key's
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
    const minute = Math.floor(at / MINUTE_MS);
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

  addTokens(e: PoolEvents['tokens']): void {
    this.data[this.bucket(e.at) + TOKENS] += e.tokens;
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

function toWindow(sum: Float64Array): UsageWindow {
  const calls = sum[CALLS];
  return {
    calls,
    successes: sum[SUCCESSES],
    rate_limited: sum[RATE_LIMITED],
    failures: sum[FAILURES],
    tokens: sum[TOKENS],
    mean_latency_ms: calls > 0 ? Math.round(sum[LATENCY] / calls) : null,
  };
}

export type UsageWindows = Record<WindowName, UsageWindow>;

/** Time-bucketed usage per provider and key, fed by the pool's 'outcome' event. */
export class UsageTracker {
  private readonly rings = new Map<string, Ring>();

  constructor(events: PoolEmitter) {
    events.on('outcome', (e) => this.ring(e.provider, e.keyId).add(e));
    events.on('tokens', (e) => this.ring(e.provider, e.keyId).addTokens(e));
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
    const nowMinute = Math.floor(now / MINUTE_MS);
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
