/**
 * server/jsonBody.ts reads plain JSON bodies itself (issue 21): for any body and headers, the app
 * must answer exactly as it did with express.json and the depth check. Two real servers on loopback,
 * the same requests to both.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type RequestHandler } from 'express';
import fc from 'fast-check';
import { jsonBody, limitBytes } from '../../../server/http/jsonBody';
import { errorHandler } from '../../../server/http/errors';
import { createLogger } from '../../../server/observe/logger';
import { verifyJsonDepth } from '../../../server/http/requestShape';

const LIMIT = '2kb';
const servers: http.Server[] = [];

async function serve(parser: RequestHandler): Promise<number> {
  const app = express();
  app.use(parser);
  app.post('/', (req, res) => {
    res.json({ body: req.body === undefined ? '(none)' : req.body });
  });
  app.use(errorHandler(createLogger({ level: 'silent', format: 'json' })));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

function send(port: number, headers: Record<string, string>, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

let before: number;
let after: number;
beforeAll(async () => {
  before = await serve(express.json({ limit: LIMIT, verify: verifyJsonDepth }));
  after = await serve(jsonBody(LIMIT));
});
afterAll(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

test('limits read as express.json reads them', () => {
  expect([limitBytes('1mb'), limitBytes('512kb'), limitBytes('100'), limitBytes('7B'), limitBytes(' 2KB ')]).toEqual([1048576, 524288, 100, 7, 2048]);
});

test('every body and content type gets the same status and answer as with express.json', async () => {
  const deep = fc.integer({ min: 60, max: 70 }).map((n) => `{"a":${'['.repeat(n)}${']'.repeat(n)}}`);
  const text = fc.oneof(
    fc.jsonValue().map((v) => JSON.stringify(v)),
    fc.object().map((v) => JSON.stringify(v)),
    deep,
    fc.string({ maxLength: 100 }),
    fc.constantFrom('', ' ', '{', '[]', ' \n{"a":1}', '\ufeff{"a":1}', '"str"', '12', 'null', `{"a":"${'x'.repeat(2100)}"}`, '{"a":"\\u00e9"}'),
  );
  const body = fc.oneof(text.map((t) => Buffer.from(t)), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)));
  const type = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset="UTF-8"', 'APPLICATION/JSON', 'application/json; charset=utf-16', 'application/json;charset=latin1', 'text/plain', 'application/vnd.api+json', undefined);
  const encoding = fc.constantFrom(undefined, undefined, 'identity', 'gzip', 'bogus');
  await fc.assert(
    fc.asyncProperty(body, type, encoding, async (b, t, e) => {
      const headers: Record<string, string> = {};
      if (t !== undefined) headers['content-type'] = t;
      if (e !== undefined) headers['content-encoding'] = e;
      const [x, y] = await Promise.all([send(before, headers, b), send(after, headers, b)]);
      expect(y).toEqual(x);
    }),
    { numRuns: 400 },
  );
}, 60_000);
