/**
 * Hostile connections (docs/design.md#blame-on-evidence): idle and slow sockets are bounded, a header timeout is a
 * 408, the open connections stay below the file limit, and new clients keep being served while one
 * client holds many sockets. Over real sockets on loopback; every bound is shortened by its variable
 * so that the tests take seconds, not the production minutes.
 */
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import request from 'supertest';
import { startSimulator, type Simulator } from '../../../scripts/simulator';
import { eventually, spawnOrche, type OrcheProcess } from '../../helpers/child';
import { hi, startStack, type Stack } from '../../helpers/stack';

const K = 'sk-or-v1-connections-test-key-0001';

/** What a raw socket got back before the server closed it, and when (ms after connect). */
interface RawAnswer {
  text: string;
  closedAfterMs: number;
}

/** Opens a socket, writes `parts` one after the other `gapMs` apart, and reads until the server closes it. */
function rawExchange(url: string, parts: string[], gapMs = 0, giveUpMs = 10_000): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s: Socket = connect(Number(port), hostname);
    let text = '';
    let i = 0;
    const timers: NodeJS.Timeout[] = [];
    const next = () => {
      if (i >= parts.length || s.destroyed) return;
      s.write(parts[i++]);
      if (i < parts.length) timers.push(setTimeout(next, gapMs));
    };
    s.on('connect', next);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    const giveUp = setTimeout(() => {
      s.destroy();
      reject(new Error(`the server still held the socket after ${giveUpMs} ms; got: ${JSON.stringify(text.slice(0, 200))}`));
    }, giveUpMs);
    s.on('close', () => {
      clearTimeout(giveUp);
      for (const t of timers) clearTimeout(t);
      resolve({ text, closedAfterMs: Date.now() - started });
    });
  });
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { code: number; type: string } };

describe('in process, with shortened bounds', () => {
  let stack: Stack;
  afterEach(async () => stack?.close());
  const BOUNDS = { ORCHE_HEADERS_TIMEOUT_MS: '400', ORCHE_BODY_TIMEOUT_MS: '800', ORCHE_KEEPALIVE_TIMEOUT_MS: '300' };
  const start = (env: Record<string, string> = {}, sim = {}) => startStack({ PROVIDER_KIMI_API_KEY: K, ...BOUNDS, ...env }, { keys: [{ key: K }], ...sim }).then((s) => (stack = s));

  test('half a header: 408 in the error shape once ORCHE_HEADERS_TIMEOUT_MS has passed, and the socket is closed', async () => {
    await start();
    const got = await rawExchange(stack.url, ['POST /api/chat HTTP/1.1\r\nHost: orche\r\nContent-Type: appl']);
    expect(statusOf(got.text)).toBe(408);
    expect(bodyOf(got.text).error).toMatchObject({ code: 408, type: 'request_timeout' });
    expect(got.text).toMatch(/\r\nX-Request-Id: /);
    // 400 ms, checked every 100 ms; the upper bound only says "not Node's 60 s".
    expect(got.closedAfterMs).toBeGreaterThanOrEqual(350);
    expect(got.closedAfterMs).toBeLessThan(3000);
  });

  test('a socket that sends nothing is closed once ORCHE_HEADERS_TIMEOUT_MS has passed', async () => {
    await start();
    const got = await rawExchange(stack.url, []);
    expect(got.closedAfterMs).toBeGreaterThanOrEqual(350);
    expect(got.closedAfterMs).toBeLessThan(3000);
  });

  test('a body sent one byte at a time: 408 once ORCHE_BODY_TIMEOUT_MS has passed, and no upstream call', async () => {
    await start();
    const body = JSON.stringify({ provider: 'kimi', messages: hi });
    const head = `POST /api/chat HTTP/1.1\r\nHost: orche\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const got = await rawExchange(stack.url, [head, ...body.split('')], 100);
    expect(statusOf(got.text)).toBe(408);
    expect(bodyOf(got.text).error.type).toBe('request_timeout');
    expect(got.closedAfterMs).toBeGreaterThanOrEqual(750);
    expect(got.closedAfterMs).toBeLessThan(4000);
    expect(stack.sim.calls).toHaveLength(0);
  });

  test('an idle keep-alive socket is closed after ORCHE_KEEPALIVE_TIMEOUT_MS', async () => {
    await start();
    const got = await rawExchange(stack.url, ['GET /health HTTP/1.1\r\nHost: orche\r\n\r\n']);
    expect(statusOf(got.text)).toBe(200);
    expect(got.text).toMatch(/\r\nConnection: keep-alive\r\n/i);
    expect(got.closedAfterMs).toBeGreaterThanOrEqual(250);
    expect(got.closedAfterMs).toBeLessThan(3000);
  });

  test('a stream is a long answer, not a slow request: it outlasts every connection bound and ends with [DONE]', async () => {
    // 12 chunks 200 ms apart: about 2.4 s, three times ORCHE_BODY_TIMEOUT_MS and six times the header bound.
    await start({}, { stream: { chunks: 12, chunkDelayMs: 200 } });
    const res = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ provider: 'kimi', messages: hi, stream: true }) });
    const started = Date.now();
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThan(1600);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(text).not.toContain('"error"');
  });

  test('a request that takes longer upstream than ORCHE_BODY_TIMEOUT_MS is answered (the bound is on receiving it)', async () => {
    await start({}, { latencyMs: 1500 });
    const res = await request(stack.url).post('/api/chat').send({ provider: 'kimi', messages: hi });
    expect(res.status).toBe(200);
  });

  test('ORCHE_MAX_CONNECTIONS: past it the oldest idle socket is closed for the newcomer; /status shows the count', async () => {
    await start({ ORCHE_MAX_CONNECTIONS: '5', ORCHE_HEADERS_TIMEOUT_MS: '10000', ORCHE_BODY_TIMEOUT_MS: '10000' });
    const { hostname, port } = new URL(stack.url);
    const idle: Socket[] = [];
    const closed: number[] = [];
    for (let i = 0; i < 8; i++) {
      const s = connect(Number(port), hostname);
      s.on('error', () => undefined);
      s.on('close', () => closed.push(i));
      await new Promise((r) => s.once('connect', r));
      idle.push(s);
      await new Promise((r) => setTimeout(r, 20));
    }
    // 8 idle sockets against a cap of 5: the three oldest went first, in order.
    await eventually(async () => closed.length >= 3, 'three evictions');
    expect(closed.slice(0, 3)).toEqual([0, 1, 2]);
    // A new client is still served at once, and the cap holds.
    const status = await getFresh(`${stack.url}/status`);
    expect(status.status).toBe(200);
    expect(status.body.connections).toMatchObject({ max: 5 });
    expect(status.body.connections.open).toBeLessThanOrEqual(5);
    for (const s of idle) s.destroy();
  });
});

/** One GET on a new connection (no agent, no keep-alive pool), with how long it took. */
function getFresh(url: string, timeoutMs = 5000): Promise<{ status: number; ms: number; body: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const req = httpRequest(url, { agent: false, timeout: timeoutMs }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started, body: text ? JSON.parse(text) : {} }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** One chat POST on a new connection. */
function chatFresh(url: string, timeoutMs = 5000): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const body = JSON.stringify({ provider: 'kimi', messages: hi });
    const req = httpRequest(`${url}/api/chat`, { method: 'POST', agent: false, timeout: timeoutMs, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The attacker, in its own process (its own file limit, raised to the hard limit so that it can hold
 * its sockets whatever the test runner's limit): opens `count` sockets to orche, half of them sending
 * half a header, and holds them; prints {connected, closed} as it goes.
 */
const ATTACKER = `
const net = require('node:net');
const [host, port, count] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
let connected = 0, closed = 0, failed = 0;
for (let i = 0; i < count; i++) {
  const s = net.connect(port, host);
  s.on('connect', () => { connected++; if (i % 2) s.write('GET /health HTTP/1.1\\r\\nHost: orche\\r\\nX-Slow: '); });
  s.on('error', () => { failed++; });
  s.on('close', () => { closed++; });
  s.resume();
}
setInterval(() => console.log(JSON.stringify({ connected, closed, failed })), 100);
`;

describe('a real orche process under a lowered file limit', () => {
  let sim: Simulator | undefined;
  let orche: OrcheProcess | undefined;
  afterEach(async () => {
    await orche?.close();
    await sim?.close();
    orche = sim = undefined;
  });

  test('ORCHE_MAX_CONNECTIONS at or above the file limit is used, with a warning at start', async () => {
    sim = await startSimulator({ keys: [{ key: K }] });
    orche = await spawnOrche({ OPENROUTER_BASE_URL: sim.baseUrl, PROVIDER_KIMI_API_KEY: K, ORCHE_MAX_CONNECTIONS: '600', LOG_LEVEL: 'info' }, { fileLimit: 512 });
    expect(await orche.waitForLine((l) => l.message === 'connection bounds')).toMatchObject({ file_limit: 512, max_connections: 600 });
    expect(await orche.waitForLine((l) => String(l.message).startsWith('ORCHE_MAX_CONNECTIONS is not below the file limit'))).toMatchObject({ level: 'warn', max_connections: 600, file_limit: 512 });
  });

  test('1,000 idle sockets from one client (ulimit -n 512): a new client is still served within 1 s, chat included', async () => {
    sim = await startSimulator({ keys: [{ key: K }] });
    orche = await spawnOrche({ OPENROUTER_BASE_URL: sim.baseUrl, PROVIDER_KIMI_API_KEY: K, ORCHE_HEADERS_TIMEOUT_MS: '10000', LOG_LEVEL: 'info' }, { fileLimit: 512 });
    const limits = await orche.waitForLine((l) => l.message === 'connection bounds');
    // The cap is read from the file limit the process really has: well below 512.
    expect(limits).toMatchObject({ file_limit: 512, max_connections: 256 });
    const { hostname, port } = new URL(orche.url);
    const attacker = spawn('bash', ['-c', 'ulimit -Sn "$(ulimit -Hn)" 2>/dev/null; exec "$0" -e "$1" "$2" "$3" "$4"', process.execPath, ATTACKER, hostname, port, '1000'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let last = { connected: 0, closed: 0, failed: 0 };
    attacker.stdout.on('data', (d: Buffer) => {
      const lines = d.toString().trim().split('\n');
      try {
        last = JSON.parse(lines[lines.length - 1]);
      } catch {
        /* a partial line: the next one comes in 100 ms */
      }
    });
    try {
      await eventually(async () => last.connected + last.failed >= 1000, 'the attacker opened its 1,000 sockets', 10_000);
      for (let i = 0; i < 5; i++) {
        const health = await getFresh(`${orche.url}/health`, 1000);
        expect(health.status).toBe(200);
        expect(health.ms).toBeLessThan(1000);
        const chat = await chatFresh(orche.url, 1000);
        expect(chat.status).toBe(200);
        expect(chat.ms).toBeLessThan(1000);
      }
      const status = await getFresh(`${orche.url}/status`, 1000);
      expect(status.body.connections.open).toBeLessThanOrEqual(256);
      // orche never ran out of files: it held at most its cap and closed the attacker's oldest idle
      // sockets. The attacker counts a socket connected once the kernel's accept queue holds it, before
      // orche accepts (and closes) it, and prints its counts every 100 ms: on a loaded machine its last
      // print lags the closes, so the count is awaited, not read once (CI saw 470 of 744 at the check).
      await eventually(async () => last.closed >= 1000 - 256, 'the attacker saw 744 of its sockets closed', 10_000);
      const after = await getFresh(`${orche.url}/status`, 1000);
      expect(after.body.connections.open).toBeLessThanOrEqual(256);
      expect(orche.lines.some((l) => /EMFILE|too many open files/i.test(JSON.stringify(l)))).toBe(false);
      expect(orche.child.exitCode).toBeNull();
    } finally {
      attacker.kill('SIGKILL');
    }
  }, 40_000);
});
