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
  /** Reactivates the keys the credits scenario disabled (ORCHE_ADMIN_TOKEN); without it they stay disabled. */
  adminToken?: string;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const requests = Number(get('--requests') ?? 6);
  if (!Number.isInteger(requests) || requests < 1) throw new Error('--requests must be a whole number above 0');
  return {
    url: get('--url'),
    sim: get('--sim'),
    providers: get('--providers')?.split(','),
    requests,
    token: get('--token') ?? process.env.ORCHE_CLIENT_TOKEN,
    adminToken: get('--admin-token') ?? process.env.ORCHE_ADMIN_TOKEN,
  };
}

interface ChatReply {
  status: number;
  body: { key_id?: string; attempts?: number; latency_ms?: number; provider?: string; error?: { type: string; message: string } };
}

class Driver {
  readonly problems: string[] = [];
  constructor(readonly url: string, readonly sim: string | undefined, private readonly token?: string, readonly adminToken?: string) {}

  headers(token = this.token): Record<string, string> {
    return { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  }

  async json<T>(path: string, init?: RequestInit, token?: string): Promise<{ status: number; body: T; headers?: globalThis.Headers }> {
    const res = await fetch(`${this.url}${path}`, { ...init, headers: this.headers(token ?? this.token), signal: AbortSignal.timeout(30_000) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: { type: 'not_json', message: text.slice(0, 200) } };
    }
    return { status: res.status, body: body as T, headers: res.headers };
  }

  chat(provider: string, n: number): Promise<ChatReply> {
    return this.json('/api/chat', { method: 'POST', body: JSON.stringify({ provider, messages: [{ role: 'user', content: `rotation check ${n}` }] }) });
  }

  async simRule(rule: object): Promise<void> {
    const res = await fetch(`${this.sim}/_sim/rules`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(rule) });
    if (!res.ok) throw new Error(`the simulator at ${this.sim} refused a rule (${res.status})`);
  }

  async simCallsSince(seq: number): Promise<Array<{ seq: number; keyId: string; status: number; model: string; outcome: string }>> {
    const res = await fetch(`${this.sim}/_sim/calls?since=${seq}`);
    return ((await res.json()) as { calls: Array<{ seq: number; keyId: string; status: number; model: string; outcome: string }> }).calls;
  }
}

interface ProviderInfo {
  provider: string;
  model: string;
  strategy: string;
  keys: Array<{ id: string; state: string; reason: string | null; role: string; account: string }>;
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

/** SSE data payloads of a whole stream (comments left out). */
function sseData(text: string): string[] {
  return text.split(/\r?\n\r?\n/).flatMap((block) => {
    const lines = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart());
    return lines.length ? [lines.join('\n')] : [];
  });
}

/**
 * Real OpenRouter shapes (docs/design.md#the-outcome-table), each made by the simulator and checked by its effect:
 * a stream that fails right after its empty role delta still rotates; an edge 429 (Cloudflare 1015)
 * cools no key and holds every provider; a 402 for an account's credits disables all its keys at once.
 */
async function checkRealShapes(d: Driver, infos: ProviderInfo[]): Promise<void> {
  // The 429s above left keys cooling; with an admin token every scenario starts from usable keys.
  if (d.adminToken) await d.json('/api/keys/reset', { method: 'POST' }, d.adminToken);
  const keyed = (await d.json<{ providers: ProviderInfo[] }>('/api/key-status')).body.providers.filter((p) => infos.some((i) => i.provider === p.provider));
  const usable = (p: ProviderInfo) => p.keys.filter((k) => k.state === 'active');
  console.log('\n== real OpenRouter shapes (docs/design.md#the-outcome-table)');

  // 1. An error chunk right after the empty role delta: the client has seen nothing, so orche rotates.
  const streamed = keyed.find((p) => usable(p).length > 1);
  if (streamed) {
    const before = (await d.simCallsSince(0)).reduce((m, c) => Math.max(m, c.seq), 0);
    await d.simRule({ match: { model: streamed.model }, type: 'stream-open-error', status: 429, times: 1 });
    const res = await fetch(`${d.url}/api/chat`, { method: 'POST', headers: d.headers(), body: JSON.stringify({ provider: streamed.provider, stream: true, messages: [{ role: 'user', content: 'rotation check: stream' }] }) });
    const data = sseData(await res.text());
    const failedUpstream = (await d.simCallsSince(before)).find((c) => c.outcome === 'stream-open-error');
    const errorChunk = data.some((x) => x.includes('"error"'));
    const content = data.filter((x) => x !== '[DONE]').map((x) => (JSON.parse(x) as { choices?: Array<{ delta?: { content?: string } }> }).choices?.[0]?.delta?.content ?? '').join('');
    const served = res.headers.get('x-orche-key-id');
    console.log(`   stream, 429 chunk after the empty role delta on ${failedUpstream?.keyId ?? '?'}: status ${res.status}, served by ${served ?? '-'}, ${errorChunk ? 'an error chunk reached the client' : 'one clean stream'}`);
    if (res.status !== 200 || errorChunk || content === '') d.problems.push(`${streamed.provider}: a 429 chunk right after the empty role delta reached the client instead of rotating`);
    else if (failedUpstream && served === failedUpstream.keyId) d.problems.push(`${streamed.provider}: the key whose stream failed served the retry`);
  } else console.log('   stream scenario skipped: no provider with two usable keys');

  // 2. A 402 for an account's credits: every key of that account is disabled after one call.
  const shared = keyed.find((p) => {
    const counts = new Map<string, number>();
    for (const k of usable(p)) counts.set(k.account, (counts.get(k.account) ?? 0) + 1);
    return [...counts.values()].some((n) => n > 1) && usable(p).length > [...counts.values()].reduce((a, b) => Math.max(a, b), 0);
  });
  if (shared) {
    const counts = new Map<string, string[]>();
    for (const k of usable(shared)) counts.set(k.account, [...(counts.get(k.account) ?? []), k.id]);
    const [account, ids] = [...counts.entries()].find(([, v]) => v.length > 1)!;
    const before = (await d.simCallsSince(0)).reduce((m, c) => Math.max(m, c.seq), 0);
    // The simulator's account is the same name as orche's configured account (account:key in the key list).
    await d.simRule({ match: { account }, type: 'no-credits' });
    // Round-robin may serve the first calls from the other account: call until one meets the 402.
    let r = await d.chat(shared.provider, 0);
    for (let i = 1; i < usable(shared).length && !(await d.simCallsSince(before)).some((c) => c.status === 402); i++) r = await d.chat(shared.provider, 0);
    const calls = await d.simCallsSince(before);
    const status = (await d.json<ProviderInfo>(`/api/key-status/${shared.provider}`)).body;
    const disabled = status.keys.filter((k) => ids.includes(k.id) && k.state === 'disabled' && k.reason === 'insufficient_credits');
    console.log(`   402 for account ${account} (${ids.length} keys): ${calls.filter((c) => c.status === 402).length} call(s) answered 402, ${disabled.length}/${ids.length} keys disabled, served by ${r.body.key_id ?? '-'} (${r.status})`);
    if (calls.filter((c) => c.status === 402).length !== 1) d.problems.push(`${shared.provider}: the account's credits took ${calls.filter((c) => c.status === 402).length} calls to find out, not one`);
    if (disabled.length !== ids.length) d.problems.push(`${shared.provider}: a 402 for account ${account} disabled ${disabled.length} of its ${ids.length} keys`);
    if (r.status !== 200) d.problems.push(`${shared.provider}: after the account's 402 the request failed (${r.status}) instead of moving to another account`);
    await fetch(`${d.sim}/_sim/rules`, { method: 'DELETE' });
    if (d.adminToken) for (const id of ids) await d.json(`/api/keys/${id}/reactivate`, { method: 'POST' }, d.adminToken);
    else console.log('   (no admin token: the account\'s keys stay disabled; reactivate them with POST /api/keys/:id/reactivate)');
  } else console.log('   account scenario skipped: no provider with two keys on one account (use account:key in the key lists)');

  // 3. An edge 429 (Cloudflare "error code: 1015"): no key cools, every provider waits together.
  const first = keyed.find((p) => usable(p).length > 0);
  if (first) {
    const holdS = 4;
    await d.simRule({ type: 'edge-1015', retryAfterSeconds: holdS, times: 1 });
    const coolingIds = async () =>
      new Set((await d.json<{ providers: ProviderInfo[] }>('/api/key-status')).body.providers.flatMap((p) => p.keys.filter((k) => k.state === 'cooling').map((k) => k.id)));
    const coolingBefore = await coolingIds();
    const t = Date.now();
    const r = await d.chat(first.provider, 0);
    const edge = (await d.json<{ edge?: { limited: boolean; until: string | null } }>('/status')).body.edge;
    const cooling = [...(await coolingIds())].filter((id) => !coolingBefore.has(id));
    console.log(`   edge 429 "error code: 1015" (Retry-After ${holdS} s): ${r.status} ${r.body.error?.type ?? ''}, /status edge ${edge?.limited ? `limited until ${edge.until}` : 'clear'}, keys cooled: ${cooling.length}`);
    if (cooling.length > 0) d.problems.push('an edge 429 cooled a key');
    if (r.status === 429) {
      if (r.body.error?.type !== 'upstream_edge_rate_limited') d.problems.push(`an edge 429 answered ${r.body.error?.type}, not upstream_edge_rate_limited`);
      if (!edge?.limited) d.problems.push('/status does not show the edge hold');
      const other = keyed.find((p) => p !== first && usable(p).length > 0);
      if (other) {
        const o = await d.chat(other.provider, 0);
        if (o.status !== 429 || o.body.error?.type !== 'upstream_edge_rate_limited') d.problems.push(`${other.provider} was not held by the edge limit (${o.status})`);
      }
      await new Promise((res) => setTimeout(res, Math.max(0, t + holdS * 1000 + 100 - Date.now())));
      const after = await d.chat(first.provider, 0);
      console.log(`   after the hold: ${after.status}`);
      if (after.status !== 200) d.problems.push(`${first.provider}: still failing (${after.status}) after the edge hold ended`);
    } else if (r.status !== 200 || Date.now() - t < holdS * 1000 - 200) d.problems.push(`an edge 429 neither held the request nor failed it with its Retry-After (${r.status})`);
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  let cleanup = async () => {};
  let url = args.url;
  let sim = args.sim;
  if (!url) {
    // Streams open with the empty role delta, as OpenRouter's do.
    const simulator = await startSimulator({ stream: { roleDelta: true } });
    const world = demoWorld(simulator.baseUrl);
    // Two of kimi's keys on one account, so that the account scenario has one to show.
    const [k1, k2, k3] = world.simKeys.filter((k) => world.env.PROVIDER_KIMI_API_KEY === k.key || world.env.PROVIDER_KIMI_BACKUP_KEYS?.split(',').includes(k.key));
    world.env.PROVIDER_KIMI_API_KEY = `demo-team:${k1.key}`;
    world.env.PROVIDER_KIMI_BACKUP_KEYS = `demo-team:${k2.key},${k3.key}`;
    k1.account = 'demo-team';
    k2.account = 'demo-team';
    for (const k of world.simKeys) simulator.addKey(k);
    const orche = createApp(parseConfig({ ...world.env, LOG_LEVEL: 'warn', ORCHE_BACKOFF_BASE_MS: '10' }));
    url = (await orche.listen(0, '127.0.0.1')).url;
    sim = simulator.baseUrl.replace('/api/v1', '');
    args.adminToken ??= world.env.ORCHE_ADMIN_TOKEN;
    cleanup = async () => {
      await orche.close();
      await simulator.close();
    };
    console.log(`self-contained run: simulator ${sim}, orche ${url}`);
  }
  const d = new Driver(url.replace(/\/+$/, ''), sim?.replace(/\/+$/, ''), args.token, args.adminToken);
  try {
    const status = await d.json<{ providers: ProviderInfo[] }>('/api/key-status').catch((err: Error) => {
      throw new Error(`cannot reach orche at ${url}: ${err.message}`);
    });
    if (status.status !== 200) throw new Error(`GET /api/key-status answered ${status.status}`);
    const providers = status.body.providers.filter((p) => !args.providers || args.providers.includes(p.provider));
    for (const info of providers) await checkProvider(d, info, args.requests);
    if (d.sim !== undefined) await checkRealShapes(d, providers);
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
