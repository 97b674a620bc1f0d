/**
 * End users are private (docs/design.md#end-user-privacy): a name a frontend sends (X-Orche-User or `user`,
 * often an e-mail address) never appears in clear in any answer or log line. /api/usage shows an
 * end user as a short hash, and only to the client token that named it; the admin token sees all.
 */
import { createHash } from 'node:crypto';
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-end-user-privacy-key-0001';
const A = 'tenant-a-client-token-0001';
const B = 'tenant-b-client-token-0002';
const ADMIN = 'admin-token-privacy-01';
const NAMES = { alice: 'alice.secret@example.com', carol: 'carol.fanout@example.net', bob: 'bob.hidden@example.org', dave: 'Dave Stream <dave@example.io>' };
const hashOf = (name: string) => createHash('sha256').update(name).digest('hex').slice(0, 12);

/** Every spelling of a name that would give it away: as sent, lower-cased, URL- and JSON-escaped, the mailbox part alone. */
function spellings(name: string): string[] {
  return [name, name.toLowerCase(), encodeURIComponent(name), JSON.stringify(name).slice(1, -1), name.split('@')[0].replace(/^.*</, '')];
}

function expectNoName(what: string, text: string): void {
  for (const name of Object.values(NAMES)) {
    for (const s of spellings(name)) if (text.includes(s)) throw new Error(`${what} carries the end-user name ${JSON.stringify(s)}`);
  }
}

let stack: Stack;
afterEach(async () => stack?.close());

const GET_ROUTES = ['/health', '/ready', '/status', '/api/key-status', '/api/key-status/kimi', '/api/models', '/api/rotations', '/api/usage', '/metrics', '/v1/models', '/dashboard'];

describe.each([
  ['status routes open', { ORCHE_PROTECT_STATUS: 'false' }],
  ['ORCHE_PROTECT_STATUS=true', { ORCHE_PROTECT_STATUS: 'true' }],
])('end-user names, %s', (_case, env) => {
  test('appear in no answer and no log line; /api/usage shows each as a short hash only to the client that named it, and all to the admin', async () => {
    stack = await startStack({ PROVIDER_KIMI_API_KEY: K, ORCHE_CLIENT_TOKENS: `${A},${B}`, ORCHE_ADMIN_TOKEN: ADMIN, ...env }, { keys: [{ key: K }] });
    const as = (token: string) => ({ Authorization: `Bearer ${token}` });
    const answers: Array<[string, string]> = [];
    const keep = (what: string, res: { status: number; text: string }) => {
      expect([what, res.status]).toEqual([what, 200]);
      answers.push([what, res.text]);
    };
    // Tenant A names alice (header, /api/chat), carol (`user` in a fan-out) and dave (a stream); tenant B names bob (`user` on /v1).
    keep('chat', await stack.http.post('/api/chat').set(as(A)).set('X-Orche-User', NAMES.alice).send({ provider: 'kimi', messages: hi }));
    keep('fanout', await stack.http.post('/api/chat/fanout').set(as(A)).send({ messages: hi, providers: ['kimi'], user: NAMES.carol }));
    keep('stream', await stack.http.post('/api/chat').set(as(A)).send({ provider: 'kimi', messages: hi, stream: true, user: NAMES.dave }));
    keep('v1', await stack.http.post('/v1/chat/completions').set(as(B)).send({ model: 'kimi', messages: hi, user: NAMES.bob }));
    // The names went upstream as OpenAI's `user` (the frontend's own choice to send them there).
    expect(stack.sim.calls.map((c) => (c.body as { user?: string }).user)).toEqual([undefined, NAMES.carol, NAMES.dave, NAMES.bob]);

    for (const token of [A, B, ADMIN]) {
      for (const path of GET_ROUTES) {
        const res = await stack.http.get(path).set(as(token));
        expect([path, res.status]).toEqual([path, 200]);
        answers.push([`GET ${path} as ${token}`, res.text]);
      }
    }
    for (const path of GET_ROUTES) answers.push([`GET ${path} without a token`, (await stack.http.get(path)).text]);
    for (const [what, text] of answers) expectNoName(what, text);
    for (const line of stack.logs.lines) expectNoName('a log line', line);

    const usersFor = async (token: string) => ((await stack.http.get('/api/usage').set(as(token))).body.end_users.users as Array<{ user: string }>).map((u) => u.user).sort();
    expect(await usersFor(A)).toEqual([hashOf(NAMES.alice), hashOf(NAMES.carol), hashOf(NAMES.dave)].sort());
    expect(await usersFor(B)).toEqual([hashOf(NAMES.bob)]);
    expect(await usersFor(ADMIN)).toEqual(Object.values(NAMES).map(hashOf).sort());
    expect((await stack.http.get('/api/usage').set(as(B))).body.end_users).toMatchObject({ tracked: 1 });
    // The request's log line names its end user by the same hash.
    const logged = stack.logs.parsed().filter((l) => l.message === 'request' && l.end_user !== undefined).map((l) => l.end_user);
    expect(logged).toEqual([hashOf(NAMES.alice), hashOf(NAMES.carol), hashOf(NAMES.dave), hashOf(NAMES.bob)]);
  });
});

test('without client tokens, a client address sees the end users it named, no one else does', async () => {
  stack = await startStack({ PROVIDER_KIMI_API_KEY: K, ORCHE_ADMIN_TOKEN: ADMIN }, { keys: [{ key: K }] });
  expect((await stack.http.post('/api/chat').set('X-Orche-User', NAMES.alice).send({ provider: 'kimi', messages: hi })).status).toBe(200);
  const mine = await stack.http.get('/api/usage');
  expect(mine.body.end_users.users.map((u: { user: string }) => u.user)).toEqual([hashOf(NAMES.alice)]);
  expectNoName('/api/usage', mine.text);
  // Seen from another address (a proxy hop orche trusts says so), the list is empty.
  const other = await startStack({ PROVIDER_KIMI_API_KEY: K, ORCHE_TRUST_PROXY: 'loopback' }, { keys: [{ key: K }] });
  try {
    expect((await other.http.post('/api/chat').set('X-Forwarded-For', '203.0.113.7').set('X-Orche-User', NAMES.bob).send({ provider: 'kimi', messages: hi })).status).toBe(200);
    expect((await other.http.get('/api/usage').set('X-Forwarded-For', '198.51.100.9')).body.end_users.users).toEqual([]);
    expect((await other.http.get('/api/usage').set('X-Forwarded-For', '203.0.113.7')).body.end_users.users.map((u: { user: string }) => u.user)).toEqual([hashOf(NAMES.bob)]);
  } finally {
    await other.close();
  }
});
