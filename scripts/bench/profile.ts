/**
 * A `.cpuprofile` (`node --cpu-prof`, as `npm run bench -- --overhead --cpu-prof=<dir>` writes them)
 * as text for BENCHMARKS.md: the top functions by self time, and the busy time by what it was spent on.
 * `node dist/scripts/bench/profile.js <file.cpuprofile> [top]`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import type { Proc } from './processes';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** What a frame's time is spent on, by its file; the first match wins. */
const CATEGORIES: Array<[string, RegExp]> = [
  ['logging (pino, server/observe/logger)', /node_modules\/(pino|pino-std-serializers|sonic-boom|quick-format-unescaped|safe-stable-stringify|atomic-sleep|on-exit-leak-free|@pinojs)\/|server\/observe\/logger\.js/],
  ['metrics (prom-client, server/observe/metrics)', /node_modules\/(prom-client|tdigest|bintrees)\/|server\/observe\/metrics\.js/],
  ['validation (zod, server/http/validation, requestShape)', /node_modules\/zod\/|server\/http\/(validation|requestShape)\.js/],
  ['request id, request log, client auth (server/http/requestLog, server/auth)', /server\/http\/requestLog\.js|server\/auth\//],
  ['security headers, CORS (server/http/headers, cors)', /node_modules\/cors\/|server\/http\/headers\.js/],
  ['client limits (express-rate-limit, server/limits, connections)', /node_modules\/(express-rate-limit|rate-limit-redis)\/|server\/limits\/|server\/http\/(clientRouting|connections)\.js|server\/lifecycle\//],
  ['the pick (keyPool, store, dispatch)', /providers\/(keys|store|dispatch|limits)\//],
  ['the upstream call (openrouterClient)', /providers\/upstream\//],
  ['body parsing (body-parser, raw-body, iconv, type-is, server/http/jsonBody)', /node_modules\/(body-parser|raw-body|iconv-lite|type-is|content-type|media-typer|bytes|http-errors|on-finished|unpipe)\/|server\/http\/jsonBody\.js/],
  ['routes, streams, usage (orche)', /server\/(routes\/|observe\/|http\/|context|app)|providers\/streams\/|providers\/[a-zA-Z]+\.js/],
  ['Express (router, response, send)', /node_modules\/(express|router|send|finalhandler|path-to-regexp|depd|qs|parseurl|statuses|vary|mime-types|mime-db|encodeurl|escape-html|content-disposition|cookie|accepts|negotiator|fresh|range-parser|etag|proxy-addr|forwarded|ipaddr\.js|debug|ms|merge-descriptors|utils-merge|setprototypeof|safe-buffer|destroy|ee-first)\//],
  ['undici (the upstream pool and parser, the floor and orche alike)', /node_modules\/undici\//],
  ['the floor (scripts/bench/floor)', /scripts\/bench\/floor\.js/],
];

function categoryOf(url: string): string | undefined {
  if (!url) return undefined;
  for (const [name, re] of CATEGORIES) if (re.test(url)) return name;
  return 'other JavaScript';
}

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)']);

/** `requests`: how many requests the profiled process served, to show each cost in µs per request. */
export function summarize(profile: Profile, top = 25, requests?: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  let idle = 0;
  let busy = 0;
  const perFunction = new Map<string, number>();
  const perCategory = new Map<string, number>();
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, '')}:${frame.lineNumber + 1}` : 'native';
    const fn = `${frame.functionName || '(anonymous)'} ${where}`;
    perFunction.set(fn, (perFunction.get(fn) ?? 0) + us);
    // Natives (writev, Buffer, regexps …) and Node core count for the nearest caller outside them:
    // a socket write is the cost of whoever wrote. The JSON builtins are their own line.
    let category: string | undefined;
    if (SPECIAL.has(frame.functionName)) category = frame.functionName;
    else if (!frame.url && /^(parse|stringify|JSONParse|JSONStringify)$/.test(frame.functionName)) category = 'JSON parse/serialise (builtins)';
    for (let at: number | undefined = id; category === undefined && at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)!.callFrame.url;
      if (url && !url.startsWith('node:')) category = categoryOf(url);
    }
    category ??= 'Node core with no caller above it (event loop, sockets, HTTP parser)';
    perCategory.set(category, (perCategory.get(category) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%` + (requests ? ` ${(us / requests).toFixed(1).padStart(6)} µs/req` : '');
  const perRequest = requests ? `, ${requests} requests: ${(busy / requests).toFixed(0)} µs busy per request` : '';
  const lines = [`busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s${perRequest}`, '', 'by what it was spent on (self time; natives and Node core counted to their nearest caller outside them):'];
  for (const [name, us] of [...perCategory].sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(us)}  ${name}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const [name, us] of [...perFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${name}`);
  return lines.join('\n');
}

export interface Profiled {
  name: string;
  /** Starts the server with these Node options; `path` is where its chat route is. */
  start(nodeArgs: string[]): Promise<Proc>;
  path: string;
  bodies: string[];
}

/**
 * Each server in turn with `--cpu-prof`, under `requests` requests at 50 connections, then stopped
 * so it writes its profile; returns each summary with its costs per request. Start-up is in the
 * profile too (a few hundred ms of module loading, spread over all the requests).
 */
export async function profileRun(dir: string, servers: Profiled[], requests: number): Promise<string> {
  const out: string[] = [];
  for (const s of servers) {
    const file = `${s.name}.cpuprofile`;
    const proc = await s.start(['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${file}`]);
    let served = 0;
    try {
      const result = await autocannon({
        url: `${proc.url}${s.path}`,
        connections: 50,
        amount: requests,
        requests: s.bodies.map((body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body })),
      });
      served = result.requests.total;
      if (result.errors + result.non2xx > 0) throw new Error(`${s.name} failed ${result.errors + result.non2xx} requests while profiled`);
    } finally {
      await proc.stop();
    }
    out.push(`#### ${s.name}\n\n${summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile, 25, served)}\n`);
  }
  return out.join('\n');
}

if (require.main === module) {
  const [file, top, requests] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/scripts/bench/profile.js <file.cpuprofile> [top] [requests served]');
    process.exit(2);
  }
  console.log(summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, top ? Number(top) : 25, requests ? Number(requests) : undefined));
}
