/**
 * `npm run test:rotation [-- --url http://host:8002 --sim http://127.0.0.1:8787]`
 * Drives a running orche (or, without --url, a self-contained simulator + orche), makes the simulator
 * rate-limit keys, prints which key served each call and every rotation, and exits non-zero when
 * rotation misbehaves. Without --sim it cannot force 429s and only checks that calls are served and spread.
 */
import { parseConfig } from '../config';
import { createApp } from '../server/app';
import { demoWorld } from './demoSetup';
import { startSimulator } from './simulator';

interface Args {
  url?: string;
  sim?: string;
  providers?: string[];
  requests: number;
  token?: string;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const requests = Number(get('--requests') ?? 6);
  if (!Number.isInteger(requests) || requests < 1) throw new Error('--requests must be a whole number above 0');
  return { url: get('--url'), sim: get('--sim'), providers: get('--providers')?.split(','), requests, token: get('--token') ?? process.env.ORCHE_CLIENT_TOKEN };
}

interface ChatReply {
  status: number;
  body: { key_id?: string; attempts?: number; latency_ms?: number; provider?: string; error?: { type: string; message: string } };
}

class Driver {
  readonly problems: string[] = [];
  constructor(private readonly url: string, readonly sim: string | undefined, private readonly token?: string) {}

  private headers(): Record<string, string> {
    return { 'Content-Type': 'application/json', ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}) };
  }

  async json<T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, { ...init, headers: this.headers(), signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: { type: 'not_json', message: text.slice(0, 200) } };
    }
    return { status: res.status, body: body as T };
  }

  chat(provider: string, n: number): Promise<ChatReply> {
    return this.json('/api/chat', { method: 'POST', body: JSON.stringify({ provider, messages: [{ role: 'user', content: `rotation check ${n}` }] }) });
  }

  async simRule(rule: object): Promise<void> {
    const res = await fetch(`${this.sim}/_sim/rules`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(rule) });
    if (!res.ok) throw new Error(`the simulator at ${this.sim} refused a rule (${res.status})`);
  }

  async simCallsSince(seq: number): Promise<Array<{ seq: number; keyId: string; status: number; model: string }>> {
    const res = await fetch(`${this.sim}/_sim/calls?since=${seq}`);
    return ((await res.json()) as { calls: Array<{ seq: number; keyId: string; status: number; model: string }> }).calls;
  }
}

interface ProviderInfo {
  provider: string;
  model: string;
  strategy: string;
  keys: Array<{ id: string; state: string; reason: string | null; role: string }>;
}

function row(cells: Array<string | number>, widths: number[]): string {
  return cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
}

async function checkProvider(d: Driver, info: ProviderInfo, requests: number): Promise<void> {
  const p = info.provider;
  const usable = info.keys.filter((k) => k.state !== 'disabled');
  console.log(`\n== ${p} (${info.model}, ${info.strategy}, ${info.keys.length} keys, ${usable.length} not disabled)`);
  if (info.keys.length === 0) {
    console.log('   unconfigured: skipped');
    return;
  }
  const widths = [4, 14, 9, 7, 10, 30];
  console.log(`   ${row(['#', 'key', 'attempts', 'status', 'latency', 'note'], widths)}`);
  const served: string[] = [];
  const show = (n: number, r: ChatReply, note: string) =>
    console.log(`   ${row([n, r.body.key_id ?? '-', r.body.attempts ?? '-', r.status, r.body.latency_ms !== undefined ? `${r.body.latency_ms} ms` : '-', note], widths)}`);

  let n = 0;
  for (let i = 0; i < requests; i++) {
    const r = await d.chat(p, ++n);
    show(n, r, r.status === 200 ? '' : `${r.body.error?.type}: ${r.body.error?.message}`);
    if (r.status !== 200) {
      d.problems.push(`${p}: call ${n} failed with ${r.status} ${r.body.error?.type ?? ''}: ${r.body.error?.message ?? ''}`);
      if (r.body.error?.type === 'no_usable_keys' || r.body.error?.type === 'provider_unconfigured') {
        d.problems.push(`${p}: every key is disabled or invalid; check PROVIDER_${p.toUpperCase()}_API_KEY / _BACKUP_KEYS`);
        return;
      }
      continue;
    }
    served.push(r.body.key_id!);
  }
  const distinct = new Set(served).size;
  if (info.strategy === 'round-robin' && usable.length > 1 && served.length >= usable.length && distinct < 2) {
    d.problems.push(`${p}: round-robin served ${served.length} calls from a single key`);
  }

  if (d.sim === undefined || served.length === 0) return;
  // Rate-limit the next call upstream, whichever key it uses: orche must move to another key at once.
  const before = (await d.simCallsSince(0)).reduce((m, c) => Math.max(m, c.seq), 0);
  await d.simRule({ match: { model: info.model }, type: 'generic-429', headers: { 'Retry-After': '30' }, times: 1 });
  const r = await d.chat(p, ++n);
  const limited = (await d.simCallsSince(before)).find((c) => c.status === 429);
  show(n, r, limited ? `upstream 429 on ${limited.keyId}` : 'no 429 seen upstream');
  if (!limited) d.problems.push(`${p}: the simulator's 429 was not reached`);
  else if (usable.length > 1) {
    if (r.status !== 200) d.problems.push(`${p}: after a 429 on ${limited.keyId} the request failed (${r.status}) instead of rotating`);
    else if (r.body.key_id === limited.keyId) d.problems.push(`${p}: the rate-limited key ${limited.keyId} answered the retry`);
    const after = await d.json<ProviderInfo>(`/api/key-status/${p}`);
    const k = after.body.keys.find((x) => x.id === limited.keyId);
    if (k?.state !== 'cooling') d.problems.push(`${p}: key ${limited.keyId} should be cooling after its 429, is ${k?.state}`);
    for (let i = 0; i < Math.min(3, requests); i++) {
      const again = await d.chat(p, ++n);
      show(n, again, '');
      if (again.body.key_id === limited.keyId) d.problems.push(`${p}: cooling key ${limited.keyId} was used again`);
    }
  }
  const rotations = await d.json<{ rotations: Array<{ at: string; from: string; to: string; reason: string }> }>(`/api/rotations?provider=${p}&limit=10`);
  for (const rot of (rotations.body.rotations ?? []).slice().reverse()) console.log(`   rotation ${rot.at}  ${rot.from} -> ${rot.to}  (${rot.reason})`);
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  let cleanup = async () => {};
  let url = args.url;
  let sim = args.sim;
  if (!url) {
    const simulator = await startSimulator({});
    const world = demoWorld(simulator.baseUrl);
    for (const k of world.simKeys) simulator.addKey(k);
    const orche = createApp(parseConfig({ ...world.env, LOG_LEVEL: 'warn', ORCHE_BACKOFF_BASE_MS: '10' }));
    url = (await orche.listen(0, '127.0.0.1')).url;
    sim = simulator.baseUrl.replace('/api/v1', '');
    cleanup = async () => {
      await orche.close();
      await simulator.close();
    };
    console.log(`self-contained run: simulator ${sim}, orche ${url}`);
  }
  const d = new Driver(url.replace(/\/+$/, ''), sim?.replace(/\/+$/, ''), args.token);
  try {
    const status = await d.json<{ providers: ProviderInfo[] }>('/api/key-status').catch((err: Error) => {
      throw new Error(`cannot reach orche at ${url}: ${err.message}`);
    });
    if (status.status !== 200) throw new Error(`GET /api/key-status answered ${status.status}`);
    const providers = status.body.providers.filter((p) => !args.providers || args.providers.includes(p.provider));
    for (const info of providers) await checkProvider(d, info, args.requests);
  } finally {
    await cleanup();
  }
  console.log('');
  if (d.problems.length > 0) {
    console.log(`ROTATION CHECK FAILED (${d.problems.length} problem(s)):`);
    for (const p of d.problems) console.log(`  - ${p}`);
    return 1;
  }
  console.log(`rotation check passed${sim ? '' : ' (no --sim given: 429s were not forced)'}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`test_rotation: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
