/**
 * Property: whatever a client sends (method, path, headers, body), orche answers without a 5xx caused
 * by the input, always in the error shape for errors, stays alive, and no key state changes.
 */
import http from 'node:http';
import fc from 'fast-check';
import { hi, startStack, type Stack } from '../helpers/stack';

const IDS = ['GLM45', 'GPTOSS', 'LLAMA3', 'KIMI', 'QWEN3', 'FALCON'];
const env: Record<string, string> = { ORCHE_ADMIN_TOKEN: 'property-admin-token' };
const simKeys = IDS.map((id) => ({ key: `sk-or-v1-property-${id.toLowerCase()}-key` }));
IDS.forEach((id, i) => (env[`PROVIDER_${id}_API_KEY`] = simKeys[i].key));

let stack: Stack;
beforeAll(async () => {
  stack = await startStack(env, { keys: simKeys });
});
afterAll(async () => stack?.close());

const PATHS = [
  '/health', '/ready', '/status', '/api/key-status', '/api/key-status/kimi', '/api/key-status/%00', '/api/models',
  '/api/rotations', '/api/rotations?limit=abc', '/api/rotations?provider=zzz', '/api/chat', '/api/chat/fanout',
  '/v1/chat/completions', '/v1/models', '/api/keys/reset', '/api/keys/reset?provider=nope', '/api/keys/abc/disable',
  '/api/keys/%E0%A4%A/reactivate', '/metrics', '/api/usage', '/dashboard', '/', '/%', '/api/chat?x[y]=1',
];

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
}

function send(req: Sent): Promise<{ status: number; text: string; headers: http.IncomingHttpHeaders }> {
  const url = new URL(stack.url);
  return new Promise((resolve, reject) => {
    // Bodies are framed as real clients frame them; malformed HTTP itself is tested separately.
    const headers = req.body ? { ...req.headers, 'content-length': String(req.body.length) } : req.headers;
    const r = http.request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    r.on('error', reject);
    r.setTimeout(10_000, () => r.destroy(new Error('timeout')));
    r.end(req.body);
  });
}

const jsonish = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record({ provider: fc.oneof(fc.constantFrom('kimi', 'KIMI', 'nope', ''), fc.anything()), messages: fc.oneof(fc.constant(hi), fc.anything(), fc.array(fc.record({ role: fc.anything(), content: fc.anything() }))) }, { requiredKeys: [] }),
  fc.record({ model: fc.oneof(fc.constantFrom('kimi', 'moonshotai/kimi-k2'), fc.anything()), messages: fc.anything(), stream: fc.anything() }, { requiredKeys: [] }),
  fc.record({ messages: fc.constant(hi), providers: fc.anything(), timeout_ms: fc.anything() }, { requiredKeys: [] }),
);

/** JSON nested `depth` levels (arrays, objects or both), inside an otherwise plausible chat body. */
const deepJson = fc.record({ depth: fc.integer({ min: 1, max: 20_000 }), kind: fc.constantFrom('array', 'object', 'mixed'), field: fc.constantFrom('x', 'messages', 'tools', 'provider') }).map(({ depth, kind, field }) => {
  const open = kind === 'array' ? '[' : kind === 'object' ? '{"a":' : '[{"a":';
  const close = kind === 'array' ? ']' : kind === 'object' ? '}' : '}]';
  const reps = kind === 'mixed' ? Math.ceil(depth / 2) : depth;
  return { depth: kind === 'mixed' ? reps * 2 : depth, text: `{"provider":"kimi","model":"kimi","messages":[{"role":"user","content":"hi"}],"${field}":${open.repeat(reps)}${kind === 'array' ? '' : '1'}${close.repeat(reps)}}` };
});

const body = fc.oneof(
  jsonish.map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  deepJson.map((d) => Buffer.from(d.text)),
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  fc.constant(undefined),
);

const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,60}$/);
const headers = fc.record(
  {
    'content-type': fc.constantFrom('application/json', 'application/json; charset=utf-16', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=nope', 'multipart/form-data'),
    'content-encoding': fc.constantFrom('gzip', 'br', 'identity', 'bogus'),
    authorization: fc.oneof(fc.constant('Bearer property-admin-token'), headerValue.map((v) => `Bearer ${v}`), headerValue),
    'x-request-id': headerValue,
    origin: headerValue,
    accept: fc.constantFrom('*/*', 'text/event-stream', 'application/json'),
  },
  { requiredKeys: [] },
);

const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
  path: fc.oneof(fc.constantFrom(...PATHS), fc.webPath().map((p) => p || '/')),
  headers,
  body,
});

async function keyStates(): Promise<string> {
  const res = await stack.http.get('/api/key-status');
  return JSON.stringify(res.body.providers.map((p: { keys: Array<{ id: string; state: string; reason: string | null }> }) => p.keys.map((k) => [k.id, k.state, k.reason])));
}

test('no input yields a 5xx, every error has the error shape, the process lives, key state is unchanged', async () => {
  const before = await keyStates();
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      // Mutating admin routes with the right token change state by design; everything else must not.
      if (r.headers.authorization === 'Bearer property-admin-token' && r.path.startsWith('/api/keys')) r.headers.authorization = 'Bearer wrong';
      const res = await send(r as Sent);
      if (res.status >= 500) throw new Error(`${r.method} ${r.path} → ${res.status}: ${res.text.slice(0, 200)}`);
      if (res.status >= 400 && r.method !== 'HEAD') {
        const parsed = JSON.parse(res.text) as { error: { code: number; type: string; message: string } };
        expect(parsed.error.code).toBe(res.status);
        expect(typeof parsed.error.type).toBe('string');
        expect(typeof parsed.error.message).toBe('string');
      }
      expect(res.headers['x-request-id']).toBeDefined();
    }),
    { numRuns: 400 },
  );
  expect((await stack.http.get('/health')).status).toBe(200);
  expect(await keyStates()).toBe(before);
}, 120_000);

test('JSON nested past 64 levels is a 400 too_deep on every JSON route, whatever the shape; never a 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('/api/chat', '/api/chat/fanout', '/v1/chat/completions', '/api/keys/reset'), deepJson.filter((d) => d.depth > 66), async (path, d) => {
      const res = await send({ method: 'POST', path, headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' }, body: Buffer.from(d.text) });
      // The admin route checks its token first; the body is still never a 5xx.
      if (path === '/api/keys/reset') return void expect(res.status).toBeLessThan(500);
      expect([path, d.depth, res.status, JSON.parse(res.text).error.type]).toEqual([path, d.depth, 400, 'too_deep']);
    }),
    { numRuns: 60 },
  );
}, 60_000);

/** Every route and the methods it serves (HEAD comes with GET). */
const ROUTES: Record<string, string[]> = {
  '/health': ['GET', 'HEAD'],
  '/ready': ['GET', 'HEAD'],
  '/status': ['GET', 'HEAD'],
  '/api/key-status': ['GET', 'HEAD'],
  '/api/key-status/kimi': ['GET', 'HEAD'],
  '/api/models': ['GET', 'HEAD'],
  '/api/rotations': ['GET', 'HEAD'],
  '/api/chat': ['POST'],
  '/api/chat/fanout': ['POST'],
  '/v1/chat/completions': ['POST'],
  '/v1/models': ['GET', 'HEAD'],
  '/v1/models/kimi': ['GET', 'HEAD'],
  '/v1/models/z-ai/glm-4.5': ['GET', 'HEAD'],
  '/api/keys/reset': ['POST'],
  '/api/keys/abc/disable': ['POST'],
  '/api/keys/abc/reactivate': ['POST'],
};

test('a known path asked with a method it does not serve is a 405 with Allow naming the ones it does', async () => {
  const wrong = fc.constantFrom(...Object.keys(ROUTES)).chain((path) => fc.tuple(fc.constant(path), fc.constantFrom(...['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD'].filter((m) => !ROUTES[path].includes(m)))));
  await fc.assert(
    fc.asyncProperty(wrong, body, async ([path, method], b) => {
      const res = await send({ method, path, headers: { 'content-type': 'application/json' }, body: b });
      expect([method, path, res.status, res.headers.allow]).toEqual([method, path, 405, ROUTES[path].join(', ')]);
      if (method !== 'HEAD') expect(JSON.parse(res.text).error.type).toBe('method_not_allowed');
    }),
    { numRuns: 150 },
  );
});

test('malformed HTTP gets a 400 in the error shape from the server itself', async () => {
  const net = await import('node:net');
  const url = new URL(stack.url);
  const text = await new Promise<string>((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write('GET /health HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n'));
    let out = '';
    socket.on('data', (d) => (out += d.toString()));
    socket.on('close', () => resolve(out));
  });
  expect(text).toMatch(/^HTTP\/1\.1 400 /);
  expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 400, type: 'bad_http_request', message: 'The request is not valid HTTP' } });
});
