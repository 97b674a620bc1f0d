/**
 * The corpus of real OpenRouter answers (tests/fixtures/openrouter) through the real path:
 * a local server on 127.0.0.1 replays each answer (status, headers, body, or the SSE events) at
 * /chat/completions; orche's own upstream client makes the call (the non-streaming attempt, or the
 * streaming attempt for stream samples), classification reads it, and the key pool applies the
 * outcome on each store (memory, snapshot file, Redis). The assertions are on the EFFECT, at a fixed
 * clock: the key, its sibling of the same account, a key of another account, another :free model of
 * the same account, a paid model of the same account, model congestion and the host's edge hold, each
 * with its deadline.
 */
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProviderConfig } from '../../../config';
import { ChatService } from '../../../providers/dispatch/chat';
import { KeyPool, type ProviderRuntime } from '../../../providers/keys/keyPool';
import { OpenRouterClient } from '../../../providers/upstream/openrouterClient';
import type { Outcome } from '../../../providers/limits/rateLimit';
import { MemoryStore } from '../../../providers/store/memory';
import { SnapshotStore, type StoreLog } from '../../../providers/store/snapshot';
import type { StateStore } from '../../../providers/store/types';
import { streamAttempt } from '../../../providers/streams/streamAttempt';
import { describeRedis, redisStores } from '../../helpers/redis';
import { FREE_MODEL, FREE_MODEL_2, key, PAID_MODEL, POOL_OPTIONS, provider, ROTATION, T0 } from '../../helpers/poolFixtures';
import { FIXTURES } from '../../helpers/paths';

interface Expect {
  kind: 'cool' | 'congested' | 'edge' | 'disable' | 'retry' | 'client_error' | 'unservable' | 'success';
  scope: 'key' | 'account' | 'account_free' | 'account_model' | 'model' | 'host' | 'none';
  until: 'reset' | 'next_minute' | 'utc_midnight' | 'retry_after' | 'default' | 'date' | 'none';
  until_value?: string;
  disable_reason?: 'invalid_key' | 'insufficient_credits' | 'key_limit';
  account_wide?: boolean;
  /** The clock this sample runs at (samples that carry an absolute reset); else T0. */
  now?: string;
  why: string;
}

interface Sample {
  id: string;
  source: {
    url: string;
    repo: string | null;
    ref: string;
    date: string;
    documented_example: boolean;
    /** Another site's answer of the same shape (not captured from openrouter.ai): replayed as a shape test, never counted as an OpenRouter answer. */
    foreign_example?: boolean;
  };
  filled_in: string;
  transport: 'json' | 'stream';
  status: number;
  headers: Record<string, string>;
  body?: unknown;
  events?: string[];
  /** What GET /key answers with this key (docs/design.md#blame-on-evidence: a 401 disables only when GET /key confirms it); absent: 500. */
  key_check?: { status: number; body: unknown };
  expect: Expect;
}

const DIR = join(FIXTURES, 'openrouter');
const SAMPLES: Sample[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Sample);

const MINUTE = 60_000;
const nextMinute = (now: number) => (Math.floor(now / MINUTE) + 1) * MINUTE;
const nextMidnight = (now: number) => {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
};

/** The deadline the sample fixes, or the one orche's defaults give (POOL_OPTIONS: 60 s cooldown, 5 s congestion). */
function expectedUntil(s: Sample, now: number): number | undefined {
  const e = s.expect;
  switch (e.until) {
    case 'reset':
    case 'retry_after':
    case 'date':
      return Date.parse(e.until_value!);
    case 'next_minute':
      return nextMinute(now);
    case 'utc_midnight':
      return nextMidnight(now);
    case 'default':
      if (e.kind === 'congested') return now + POOL_OPTIONS.congestionMs;
      if (e.kind === 'cool') return now + POOL_OPTIONS.cooldownMs;
      return undefined; // edge: orche's short default, checked as "ahead, within a minute"
    case 'none':
      return undefined;
  }
}

// ---------------------------------------------------------------- the replay server

let current: Sample | undefined;
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const s = current;
      if (s && req.method === 'GET' && req.url === '/key') {
        const check = s.key_check ?? { status: 500, body: 'no key_check in the sample' };
        res.writeHead(check.status, { 'content-type': 'application/json' }).end(JSON.stringify(check.body));
        return;
      }
      if (!s || req.method !== 'POST' || req.url !== '/chat/completions') {
        res.writeHead(500).end('no sample');
        return;
      }
      res.writeHead(s.status, s.headers);
      if (s.transport === 'stream') {
        for (const line of s.events ?? []) res.write(`${line}\n\n`);
        res.end();
        return;
      }
      const body = s.body === undefined ? '' : typeof s.body === 'string' ? s.body : JSON.stringify(s.body);
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.close();
  await once(server, 'close');
});

// ---------------------------------------------------------------- the stack per sample

/** Keys: a1 and a2 of account acct1 and b1 of acct2 on a :free model; a3 (acct1) on another :free model; a4 (acct1) on a paid model. */
const a1 = key('a1', { role: 'primary', account: 'acct1' });
const a2 = key('a2', { account: 'acct1' });
const b1 = key('b1', { account: 'acct2' });
const a3 = key('a3', { role: 'primary', account: 'acct1' });
const a4 = key('a4', { role: 'primary', account: 'acct1' });
const NAMES = new Map([a1, a2, b1, a3, a4].map((k) => [k.id, k.key.replace('sk-or-v1-test-', '')]));

const PROVIDERS: ProviderConfig[] = [
  provider('pa', [a1, a2, b1], { model: FREE_MODEL, strategy: 'failover' }),
  provider('pb', [a3], { model: FREE_MODEL_2, strategy: 'failover' }),
  provider('pp', [a4], { model: PAID_MODEL, strategy: 'failover' }),
];

interface Stack {
  pool: KeyPool;
  rt: (slug: string) => ProviderRuntime;
}

function stackOn(store: StateStore): Stack {
  const pool = new KeyPool(PROVIDERS, store, { ...POOL_OPTIONS });
  return {
    pool,
    rt: (slug) => {
      const r = pool.get(slug);
      if (!r) throw new Error(`no provider ${slug}`);
      return r;
    },
  };
}

const BODY = { messages: [{ role: 'user', content: 'hi' }] };

/**
 * One call as the dispatcher makes it: pick (a1, the primary), the attempt through the real client, the
 * report to the pool. Returns the outcome the attempt classified.
 */
async function callOnce(stack: Stack, sample: Sample, now: number): Promise<Outcome> {
  const client = new OpenRouterClient({ baseUrl });
  try {
    const pa = stack.rt('pa');
    const pick = await stack.pool.pick(pa, now);
    expect(pick.keyId).toBe(a1.id);
    const ctx = { provider: pa, keyId: a1.id, key: stack.pool.secret(pa, a1.id), timeoutMs: 5_000 };
    current = sample;
    const deps = { now: () => now, sleep: async () => undefined, random: () => 0.5 };
    const result =
      sample.transport === 'stream'
        ? await streamAttempt(client, BODY, { now: deps.now })(ctx)
        : await new ChatService(stack.pool, client, ROTATION, deps).jsonAttempt(BODY)(ctx);
    // A stream that opened well is the client's now; the test has what it needs.
    if (sample.transport === 'stream' && result.value) (result.value as { abort(): void }).abort();
    await stack.pool.report(pa, a1.id, result.outcome, 5, now, pick.keyId === null ? undefined : pick);
    return result.outcome;
  } finally {
    current = undefined;
    client.close();
  }
}

interface KeyView {
  state: string;
  reason: string | null;
  until: number | null;
}

async function keysOf(stack: Stack, slug: string, now: number): Promise<Record<string, KeyView>> {
  const out: Record<string, KeyView> = {};
  for (const s of await stack.pool.keyStatuses(stack.rt(slug), now)) {
    out[NAMES.get(s.id)!] = { state: s.state, reason: s.state === 'disabled' ? s.reason : null, until: s.cooldown_until };
  }
  return out;
}

const ACTIVE: KeyView = { state: 'active', reason: null, until: null };
const cooling = (until: number): KeyView => ({ state: 'cooling', reason: null, until });
const disabled = (reason: string): KeyView => ({ state: 'disabled', reason, until: null });

/** The effect the sample's `expect` names, on every key and gate the stack has. */
async function assertEffect(stack: Stack, sample: Sample, outcome: Outcome, now: number): Promise<void> {
  const e = sample.expect;
  expect({ kind: outcome.kind }).toEqual({ kind: e.kind });
  const at = now + 1;
  const pa = await keysOf(stack, 'pa', at);
  const pb = await keysOf(stack, 'pb', at);
  const pp = await keysOf(stack, 'pp', at);
  // Key states carry the reason only when disabled: a cooling key's reason text is orche's own label.
  const seen = {
    a1: pa.a1,
    a2: pa.a2,
    b1: pa.b1,
    'a3 (other :free model, same account)': pb.a3,
    'a4 (paid model, same account)': pp.a4,
  };
  const until = expectedUntil(sample, now);
  const want: typeof seen = { a1: ACTIVE, a2: ACTIVE, b1: ACTIVE, 'a3 (other :free model, same account)': ACTIVE, 'a4 (paid model, same account)': ACTIVE };
  let congestion = 0;
  if (e.kind === 'cool') {
    const c = cooling(until!);
    want.a1 = c;
    if (e.scope === 'account_free') Object.assign(want, { a2: c, 'a3 (other :free model, same account)': c });
    if (e.scope === 'account_model') want.a2 = c;
    if (e.scope === 'account') Object.assign(want, { a2: c, 'a3 (other :free model, same account)': c, 'a4 (paid model, same account)': c });
  } else if (e.kind === 'disable') {
    const d = disabled(e.disable_reason!);
    want.a1 = d;
    if (e.account_wide) Object.assign(want, { a2: d, 'a3 (other :free model, same account)': d, 'a4 (paid model, same account)': d });
  } else if (e.kind === 'congested') {
    congestion = until!;
  }
  expect(seen).toEqual(want);
  // Congestion is the model's: this :free model only, never the other one.
  expect({ congested: await stack.pool.congestedUntil(stack.rt('pa'), at), otherModel: await stack.pool.congestedUntil(stack.rt('pb'), at) }).toEqual({
    congested: congestion,
    otherModel: 0,
  });
  // The edge hold is the host's: set by an edge answer only, and then every provider waits for it.
  const edge = await stack.pool.edgeUntil(at);
  if (e.kind === 'edge') {
    if (until !== undefined) expect(edge).toBe(until);
    else {
      expect(edge).toBeGreaterThan(at);
      expect(edge).toBeLessThanOrEqual(now + MINUTE);
    }
    for (const slug of ['pa', 'pb', 'pp']) expect(await stack.pool.pick(stack.rt(slug), at)).toMatchObject({ keyId: null, reason: 'edge' });
  } else {
    expect(edge).toBe(0);
  }
  // What stays usable is picked: the sibling unless its account cools/disables, and always the other account.
  if (e.kind !== 'edge' && e.kind !== 'congested') {
    const next = await stack.pool.pick(stack.rt('pa'), at);
    const siblingUsable = want.a2.state === 'active';
    const firstUsable = want.a1.state === 'active' ? 'a1' : siblingUsable ? 'a2' : 'b1';
    expect(NAMES.get(next.keyId ?? '')).toBe(firstUsable);
  }
}

// ---------------------------------------------------------------- the table, on every store

function describeCorpus(
  name: string,
  makeStore: (now: number) => Promise<StateStore>,
  cleanup: (s: StateStore) => Promise<void>,
  reopen?: (s: StateStore, now: number) => Promise<StateStore>,
): void {
  describe(`real OpenRouter answers on the ${name} store`, () => {
    test.each(SAMPLES.map((s) => [s.id, s] as const))('%s', async (_id, sample) => {
      const now = sample.expect.now ? Date.parse(sample.expect.now) : T0;
      let store = await makeStore(now);
      try {
        const outcome = await callOnce(stackOn(store), sample, now);
        // The snapshot store is checked after a restart: the effect must be in the file.
        if (reopen) store = await reopen(store, now);
        await assertEffect(stackOn(store), sample, outcome, now);
      } finally {
        await cleanup(store);
      }
    });
  });
}

test('every 401 sample OpenRouter itself answered says what GET /key answered (the disable needs its confirmation)', () => {
  for (const s of SAMPLES.filter((x) => x.status === 401 && x.expect.kind === 'disable')) expect({ id: s.id, key_check: s.key_check?.status }).toEqual({ id: s.id, key_check: 401 });
});

test('the corpus holds at least 45 distinct real OpenRouter answers, each with its source and date', () => {
  // Not counted: COMPOSED samples, the success control, and foreign pages of the same shape.
  const real = SAMPLES.filter((s) => !/^COMPOSED/.test(s.source.ref) && s.expect.kind !== 'success' && s.source.foreign_example !== true);
  expect(real.length).toBeGreaterThanOrEqual(45);
  expect(real.map((s) => s.id)).not.toContain('429-edge-cloudflare-1015-page');
  for (const s of SAMPLES) {
    expect(s.source.url).toMatch(/^https:\/\//);
    expect(s.source.date).toMatch(/\d{4}-\d{2}-\d{2}|date not shown/);
    expect(s.filled_in.length).toBeGreaterThan(0);
    expect(s.transport === 'stream' ? Array.isArray(s.events) : 'body' in s).toBe(true);
  }
  const bodies = real.map((s) => `${s.status}|${s.transport}|${JSON.stringify(s.body ?? s.events)}`);
  expect(new Set(bodies).size).toBe(bodies.length);
});

const quiet: StoreLog = { info: () => undefined, warn: () => undefined };

describeCorpus(
  'memory',
  async () => new MemoryStore(),
  (s) => s.close(),
);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const paths = new Map<StateStore, string>();
describeCorpus(
  'snapshot',
  async (now) => {
    const dir = mkdtempSync(join(tmpdir(), 'orche-corpus-'));
    dirs.push(dir);
    const store = new SnapshotStore(join(dir, 'state.json'), { logger: quiet, now: () => now });
    paths.set(store, join(dir, 'state.json'));
    return store;
  },
  (s) => s.close(),
  async (s, now) => {
    const path = paths.get(s)!;
    await s.close();
    return new SnapshotStore(path, { logger: quiet, now: () => now });
  },
);

describeRedis('redis', () => {
  const stores = redisStores('corpus', () => quiet);
  describeCorpus('redis', () => stores.make(), stores.cleanup);
});
