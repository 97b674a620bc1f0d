/**
 * The rotation benchmark (`npm run bench -- --rotation`): a compressed minute on free keys.
 * 5 keys in 3 accounts (2+2+1), each account 5 calls per 10 s window (the simulator enforces it per
 * account and answers OpenRouter's free-models-per-min 429), demand 2× capacity, 5 % upstream 5xx
 * (which the simulator counts, as OpenRouter counts what it admitted). Windows fall on whole
 * multiples of their length, as OpenRouter's do; a second set of runs has windows that open at an
 * account's first call. Run against orche (one instance, then three on one Redis) and against a
 * naive round-robin proxy written here; then a fairness run with two clients at 10:1 demand.
 * Numbers, not assertions.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOrche, startPrinting, type Proc } from './processes';

export interface RotationOptions {
  seconds: number;
  /** How long a request may wait for a key (ORCHE_MAX_WAIT_MS); default: a window and 2 s. */
  patienceMs?: number;
  windowMs: number;
  perAccount: number;
  /** Demand as a multiple of what the accounts allow. */
  demand: number;
  errorRate: number;
  redisUrl?: string;
  /** How the simulator's windows open: on whole multiples (OpenRouter's, the default) or at an account's first call. */
  windowMode?: 'aligned' | 'first-call';
}

export const FULL: RotationOptions = { seconds: 40, windowMs: 10_000, perAccount: 5, demand: 2, errorRate: 0.05 };
export const SMOKE: RotationOptions = { seconds: 4, windowMs: 2_000, perAccount: 5, demand: 2, errorRate: 0.05 };

const ACCOUNTS = [
  { id: 'user_acc1', keys: ['sk-or-v1-rot-a1', 'sk-or-v1-rot-a2'] },
  { id: 'user_acc2', keys: ['sk-or-v1-rot-b1', 'sk-or-v1-rot-b2'] },
  { id: 'user_acc3', keys: ['sk-or-v1-rot-c1'] },
];
const MODEL = 'z-ai/glm-4.5:free';
const BODY_MESSAGES = [{ role: 'user', content: 'Say hello.' }];

interface SimCall { seq: number; at: number; keyId: string; account: string; status: number; outcome: string }

export interface RunResult {
  name: string;
  windowMode: 'aligned' | 'first-call';
  requests: number;
  served: number;
  /** What the accounts allow these arrivals, after the 5xx each account spent in each window (`idealServed`). */
  ideal: number;
  upstreamCalls: number;
  upstream429: Record<string, number>;
  upstream5xx: number;
  /** Upstream 429s per account over the whole run. */
  per429: Record<string, number>;
  /** The most upstream 429s one account had in one of its windows, and how many windows the accounts opened. */
  max429PerWindow: number;
  windows: number;
  /** Delay from each window reset (with demand waiting) to the account's next upstream call, ms. */
  resetToUse: number[];
  /** Per client: [served, requests]. */
  clients: Record<string, [number, number]>;
  lightShare?: number;
}

/** How long a request may wait for a key: one whole window and a little (ORCHE_MAX_WAIT_MS). */
export function patience(o: RotationOptions): number {
  return o.patienceMs ?? o.windowMs + 2000;
}

/** The capacity per window and per account, from the scenario. */
export function capacity(o: RotationOptions): number {
  return ACCOUNTS.length * o.perAccount;
}

export function simConfig(o: RotationOptions): string {
  const dir = mkdtempSync(join(tmpdir(), 'orche-rotation-'));
  const file = join(dir, 'sim.json');
  writeFileSync(file, JSON.stringify({
    acceptAnyKey: false,
    windowMs: o.windowMs,
    windowMode: o.windowMode ?? 'aligned',
    accounts: ACCOUNTS.map((a) => ({ id: a.id, freeRpm: o.perAccount, freeRpd: 1_000_000 })),
    keys: ACCOUNTS.flatMap((a) => a.keys.map((key) => ({ key, account: a.id }))),
  }));
  return file;
}

async function post(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
}

async function simCalls(simRoot: string, since: number): Promise<SimCall[]> {
  const res = await fetch(`${simRoot}/_sim/calls?since=${since}`);
  return ((await res.json()) as { calls: SimCall[] }).calls;
}

/** orche configured for the scenario: one provider on the `:free` model, the five keys with their accounts. */
export function orcheEnv(simBase: string, o: RotationOptions, extra: Record<string, string> = {}): Record<string, string> {
  const keys = ACCOUNTS.flatMap((a) => a.keys.map((k) => `${a.id}:${k}`));
  return {
    OPENROUTER_BASE_URL: simBase,
    PROVIDER_GLM45_MODEL: MODEL,
    PROVIDER_GLM45_API_KEY: keys[0],
    PROVIDER_GLM45_BACKUP_KEYS: keys.slice(1).join(','),
    ORCHE_PROBE_INTERVAL_MS: '0',
    // A request may wait out one whole window (the compressed minute), as a client of free keys would.
    ORCHE_MAX_WAIT_MS: String(patience(o)),
    // The simulator's minute is compressed to the window: orche reads its per-minute 429s so.
    ORCHE_MINUTE_MS: String(o.windowMs),
    ORCHE_BACKOFF_BASE_MS: '100',
    ORCHE_BACKOFF_MAX_MS: '500',
    ORCHE_CLIENT_TOKENS: 'bench-client-heavy,bench-client-light',
    ...extra,
  };
}

/**
 * A naive gateway: the next key in turn for every request; on a 429 or a 5xx, the next key at once,
 * up to one try per key. What a few lines of rotation do without learning anything.
 */
export function startNaive(simBase: string): Promise<{ url: string; close(): Promise<void> }> {
  const keys = ACCOUNTS.flatMap((a) => a.keys);
  let next = 0;
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => {
      raw += c.toString();
    });
    req.on('end', async () => {
      let status = 502;
      let text = '{"error":{"code":502,"message":"no answer"}}';
      const body = JSON.stringify({ ...(JSON.parse(raw) as object), model: MODEL });
      for (let i = 0; i < keys.length; i++) {
        const key = keys[next++ % keys.length];
        const up = await fetch(`${simBase}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
        status = up.status;
        text = await up.text();
        if (status !== 429 && status < 500) break;
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(text);
    });
  });
  return new Promise((done) => {
    server.listen(0, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      done({ url, close: () => new Promise((c) => server.close(() => c())) });
    });
  });
}

export interface Client { name: string; token: string; perSecond: number }

/** Open-loop arrivals for each client, spread over the targets in turn; resolves when every answer is in. */
export interface Done { client: string; sentAt: number; at: number; status: number }

export async function drive(urls: string[], clients: Client[], seconds: number): Promise<{ started: number; lastArrival: number; done: Done[]; sent: Record<string, number> }> {
  const done: Done[] = [];
  const sent: Record<string, number> = {};
  const inflight: Promise<void>[] = [];
  const started = Date.now();
  let lastArrival = started;
  let turn = 0;
  const end = started + seconds * 1000;
  await Promise.all(clients.map(async (c) => {
    sent[c.name] = 0;
    const gap = 1000 / c.perSecond;
    for (let i = 0; ; i++) {
      const at = started + i * gap;
      if (at >= end) break;
      const wait = at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const sentAt = Date.now();
      lastArrival = Math.max(lastArrival, sentAt);
      sent[c.name]++;
      const url = urls[turn++ % urls.length];
      inflight.push(
        fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${c.token}` },
          body: JSON.stringify({ model: 'glm45', messages: BODY_MESSAGES }),
          signal: AbortSignal.timeout(60_000),
        }).then(
          async (r) => {
            await r.arrayBuffer();
            done.push({ client: c.name, sentAt, at: Date.now(), status: r.status });
          },
          () => {
            done.push({ client: c.name, sentAt, at: Date.now(), status: 0 });
          },
        ),
      );
    }
  }));
  await Promise.all(inflight);
  return { started, lastArrival, done, sent };
}

/**
 * What the accounts allow: window by window, up to the accounts' capacity left after the 5xx they
 * spent in that window (`roomOf`; the upstream counted those calls), the waiting requests that are
 * still willing to wait (arrived at most `patienceMs` before the window, or during it), oldest
 * first — the most any gateway could serve to these arrivals. Windows on whole multiples of
 * `windowMs`.
 */
export function idealServed(arrivals: number[], windowMs: number, perWindow: number | ((window: number) => number), patienceMs: number): number {
  if (arrivals.length === 0) return 0;
  const roomOf = typeof perWindow === 'number' ? () => perWindow : perWindow;
  const sorted = [...arrivals].sort((a, b) => a - b);
  const served = new Array<boolean>(sorted.length).fill(false);
  let total = 0;
  const last = Math.floor((sorted[sorted.length - 1] + patienceMs) / windowMs);
  for (let w = Math.floor(sorted[0] / windowMs); w <= last; w++) {
    const start = w * windowMs;
    const end = start + windowMs;
    let room = roomOf(w);
    for (let i = 0; i < sorted.length && room > 0; i++) {
      if (served[i] || sorted[i] >= end || sorted[i] + patienceMs < start) continue;
      served[i] = true;
      room--;
      total++;
    }
  }
  return total;
}

/** Calls the simulator counted against an account's window: those it served and the 5xx it admitted. */
const counted = (c: SimCall) => c.status === 200 || c.status >= 500;

/**
 * Each account's windows as the simulator opened them: on whole multiples of `windowMs`, or (first-call)
 * from a counted call to `windowMs` later, the next opening at the first counted call after that.
 * Returns, per account, the start of the window each call fell in (undefined: in none).
 */
export function accountWindows(calls: SimCall[], windowMs: number, mode: 'aligned' | 'first-call'): Map<SimCall, number | undefined> {
  const out = new Map<SimCall, number | undefined>();
  for (const a of ACCOUNTS) {
    let start = -Infinity;
    for (const c of calls.filter((x) => x.account === a.id).sort((x, y) => x.at - y.at || x.seq - y.seq)) {
      if (mode === 'aligned') {
        out.set(c, Math.floor(c.at / windowMs) * windowMs);
        continue;
      }
      if (c.at >= start + windowMs) {
        if (!counted(c)) {
          out.set(c, undefined);
          continue;
        }
        start = c.at;
      }
      out.set(c, start);
    }
  }
  return out;
}

/** For each account and each window boundary while demand waited, the delay to its next call. */
export function resetDelays(calls: SimCall[], windowMs: number, perAccount: number, from: number, to: number): number[] {
  const delays: number[] = [];
  for (const a of ACCOUNTS) {
    const mine = calls.filter((c) => c.account === a.id).sort((x, y) => x.at - y.at);
    const servedIn = new Map<number, number>();
    for (const c of mine) if (c.status === 200) servedIn.set(Math.floor(c.at / windowMs), (servedIn.get(Math.floor(c.at / windowMs)) ?? 0) + 1);
    for (let w = Math.floor(from / windowMs) + 1; w * windowMs < to; w++) {
      // Demand waited at this reset if the account's previous window was used up.
      if ((servedIn.get(w - 1) ?? 0) < perAccount) continue;
      const b = w * windowMs;
      const next = mine.find((c) => c.at >= b);
      if (next) delays.push(next.at - b);
    }
  }
  return delays;
}

async function measure(name: string, simRoot: string, urls: string[], clients: Client[], o: RotationOptions, align = true): Promise<RunResult> {
  // Start on a fresh window, so that what a previous run used of the current one counts for neither side.
  if (align) await new Promise((r) => setTimeout(r, o.windowMs - (Date.now() % o.windowMs) + 20));
  await post(`${simRoot}/_sim/reset`, {});
  if (o.errorRate > 0) await post(`${simRoot}/_sim/rules`, { type: 'status', status: 502, probability: o.errorRate });
  const since = (await simCalls(simRoot, 0)).at(-1)?.seq ?? 0;
  const run = await drive(urls, clients, o.seconds);
  const calls = await simCalls(simRoot, since);
  const mode = o.windowMode ?? 'aligned';
  // When each request really left (not its planned time: the timers drift under load, and a later
  // arrival may still be served later, so the real times make the ideal higher, the stricter reading).
  const arrivalsEvery = run.done.map((d) => d.sentAt);
  // The 5xx each account spent in each (whole-multiple) window: the upstream counted them.
  const spent = new Map<number, Map<string, number>>();
  for (const c of calls) {
    if (c.status < 500) continue;
    const w = Math.floor(c.at / o.windowMs);
    const m = spent.get(w) ?? new Map<string, number>();
    m.set(c.account, (m.get(c.account) ?? 0) + 1);
    spent.set(w, m);
  }
  const roomOf = (w: number) => ACCOUNTS.reduce((n, a) => n + Math.max(0, o.perAccount - (spent.get(w)?.get(a.id) ?? 0)), 0);
  // Upstream 429s per account, and per account and window.
  const windowOf = accountWindows(calls, o.windowMs, mode);
  const per429: Record<string, number> = {};
  const perWindow = new Map<string, number>();
  const opened = new Set<string>();
  for (const c of calls) {
    const w = windowOf.get(c);
    if (w !== undefined && counted(c)) opened.add(`${c.account}|${w}`);
    if (c.status !== 429) continue;
    per429[c.account] = (per429[c.account] ?? 0) + 1;
    const id = `${c.account}|${w ?? 'none'}`;
    perWindow.set(id, (perWindow.get(id) ?? 0) + 1);
  }
  const upstream429: Record<string, number> = {};
  for (const c of calls) if (c.status === 429) upstream429[`${c.outcome} ${c.outcome === 'free-per-min' ? c.account : c.keyId}`] = (upstream429[`${c.outcome} ${c.outcome === 'free-per-min' ? c.account : c.keyId}`] ?? 0) + 1;
  const clientsOut: Record<string, [number, number]> = {};
  for (const c of clients) clientsOut[c.name] = [run.done.filter((d) => d.client === c.name && d.status === 200).length, run.sent[c.name]];
  const result: RunResult = {
    name,
    windowMode: mode,
    requests: run.done.length,
    served: run.done.filter((d) => d.status === 200).length,
    ideal: idealServed(arrivalsEvery, o.windowMs, roomOf, patience(o)),
    upstreamCalls: calls.length,
    upstream429,
    upstream5xx: calls.filter((c) => c.status >= 500).length,
    per429,
    max429PerWindow: Math.max(0, ...perWindow.values()),
    windows: opened.size,
    // Resets fall on whole multiples only in the aligned mode.
    resetToUse: mode === 'aligned' ? resetDelays(calls, o.windowMs, o.perAccount, run.started, run.lastArrival) : [],
    clients: clientsOut,
  };
  if (clients.length === 2) {
    result.lightShare = lightShare(run.done, clients[1].name);
  }
  await fetch(`${simRoot}/_sim/rules`, { method: 'DELETE' });
  return result;
}

/**
 * The lighter client's share of everything served (docs/design.md#pacing-and-fairness): its successes over all
 * successes of the run. (Issue 13's figure counted only what was served while the light client had
 * a request waiting, which hid how little it got.)
 */
export function lightShare(done: Done[], light: string): number {
  const served = done.filter((d) => d.status === 200);
  return served.length === 0 ? 0 : served.filter((d) => d.client === light).length / served.length;
}

function sum(r: Record<string, number>): number {
  return Object.values(r).reduce((a, b) => a + b, 0);
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

export function rotationTable(results: RunResult[]): string {
  const head = '| run | served / ideal | upstream calls | upstream 429s (per scope) | 5xx | reset → next use (median / max) | lighter client\'s share of everything served | most 429s of one account in one window (windows) |\n|---|---|---|---|---|---|---|---|';
  const rows = results.map((r) => {
    const scopes = Object.entries(r.upstream429).map(([k, v]) => `${k}: ${v}`).join(', ');
    const delay = r.resetToUse.length === 0 ? 'n/a' : `${pct(r.resetToUse, 0.5)} / ${Math.max(...r.resetToUse)} ms (${r.resetToUse.length} resets)`;
    const share = r.lightShare === undefined ? '' : `${(100 * r.lightShare).toFixed(1)}% (${Object.entries(r.clients).map(([k, [s, n]]) => `${k} ${s}/${n}`).join(', ')})`;
    return `| ${r.name} | ${r.served} / ${r.ideal} (${(r.ideal === 0 ? 0 : r.served / r.ideal).toFixed(3)}) | ${r.upstreamCalls} | ${sum(r.upstream429)}${scopes ? ` (${scopes})` : ''} | ${r.upstream5xx} | ${delay} | ${share} | ${r.max429PerWindow} (${r.windows}) |`;
  });
  return [head, ...rows].join('\n');
}

/** Runs every scenario; the caller owns printing. `procs` collects children so the caller stops them. */
export async function rotationBench(o: RotationOptions, procs: Proc[], log: (line: string) => void = () => {}): Promise<RunResult[]> {
  const sim = await startPrinting('scripts/simulator.js', ['--port', '0', '--config', simConfig(o)]);
  procs.push(sim);
  const simRoot = sim.url;
  const simBase = `${simRoot}/api/v1`;
  const perSecond = (o.demand * capacity(o) * 1000) / o.windowMs;
  const one: Client[] = [{ name: 'client', token: 'bench-client-heavy', perSecond }];
  const results: RunResult[] = [];

  const naive = await startNaive(simBase);
  try {
    log('rotation: naive round-robin');
    results.push(await measure('naive round-robin proxy', simRoot, [naive.url], one, o));
  } finally {
    await naive.close();
  }

  log('rotation: orche');
  const orche = await startOrche(orcheEnv(simBase, o));
  procs.push(orche);
  results.push(await measure('orche, 1 instance', simRoot, [orche.url], one, o));

  log('rotation: fairness, 10:1');
  const light = (capacity(o) * 1000) / o.windowMs;
  results.push(await measure('orche, fairness 10:1', simRoot, [orche.url], [
    { name: 'heavy', token: 'bench-client-heavy', perSecond: 10 * light },
    { name: 'light', token: 'bench-client-light', perSecond: light },
  ], o));
  await orche.stop();

  // Budgets configured (ORCHE_FREE_RPM): configured budgets count per real minute, so this run's
  // simulator has minute windows; orche should send no 429 at all.
  log('rotation: orche with budgets configured (60 s windows)');
  const minute: RotationOptions = { ...o, windowMs: 60_000, patienceMs: o.windowMs + 2000 };
  const sim60 = await startPrinting('scripts/simulator.js', ['--port', '0', '--config', simConfig(minute)]);
  procs.push(sim60);
  const budgeted = await startOrche(orcheEnv(`${sim60.url}/api/v1`, minute, { ORCHE_FREE_RPM: String(o.perAccount), ORCHE_MINUTE_MS: '60000' }));
  procs.push(budgeted);
  const perSecond60 = (o.demand * capacity(minute) * 1000) / minute.windowMs;
  // A fresh process and simulator: no need to wait for a fresh minute (its ideal counts from the start).
  results.push(await measure('orche, budgets configured (60 s windows)', sim60.url, [budgeted.url], [{ ...one[0], perSecond: perSecond60 }], minute, false));
  await budgeted.stop();
  await sim60.stop();

  if (o.redisUrl) {
    log('rotation: orche × 3 on Redis');
    const prefix = `orche-bench-rot-${process.pid}-${Date.now()}:`;
    const three: Proc[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await startOrche(orcheEnv(simBase, o, { REDIS_URL: o.redisUrl, ORCHE_REDIS_PREFIX: prefix }));
      procs.push(p);
      three.push(p);
    }
    results.push(await measure('orche, 3 instances on Redis', simRoot, three.map((p) => p.url), one, o));
    for (const p of three) await p.stop();
    await dropPrefix(o.redisUrl, prefix);
  }

  // Windows that open at an account's first call (not OpenRouter's way; a limiter that starts its
  // clock when first used): resets fall anywhere, and orche's windows follow the resets it is sent.
  log('rotation: first-call windows');
  const fc: RotationOptions = { ...o, windowMode: 'first-call' };
  const simFc = await startPrinting('scripts/simulator.js', ['--port', '0', '--config', simConfig(fc)]);
  procs.push(simFc);
  const fcBase = `${simFc.url}/api/v1`;
  const single = await startOrche(orcheEnv(fcBase, fc));
  procs.push(single);
  results.push(await measure('orche, 1 instance, first-call windows', simFc.url, [single.url], one, fc, false));
  await single.stop();
  if (o.redisUrl) {
    const prefix = `orche-bench-rot-fc-${process.pid}-${Date.now()}:`;
    const three: Proc[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await startOrche(orcheEnv(fcBase, fc, { REDIS_URL: o.redisUrl, ORCHE_REDIS_PREFIX: prefix }));
      procs.push(p);
      three.push(p);
    }
    results.push(await measure('orche, 3 instances on Redis, first-call windows', simFc.url, three.map((p) => p.url), one, fc, false));
    for (const p of three) await p.stop();
    await dropPrefix(o.redisUrl, prefix);
  }
  await simFc.stop();
  return results;
}

/** Removes the benchmark's keys from Redis (its own prefix only). */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const { default: Redis } = await import('ioredis');
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
