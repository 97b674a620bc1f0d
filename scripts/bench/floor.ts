/**
 * The floor this stack allows (issue 21): a bare Express 5 route that forwards the request body,
 * unparsed, with undici's pooled client and pipes the answer back, unparsed too, streams included.
 * No validation, rotation, logging or headers of its own: whatever orche costs above it is orche's.
 * `node dist/scripts/bench/floor.js <upstream base URL>` prints its own URL.
 */
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import express from 'express';
import { Pool } from 'undici';

const upstream = new URL(process.argv[2]);
const path = `${upstream.pathname.replace(/\/$/, '')}/chat/completions`;
// More connections than the benchmark opens (50), so no request waits for a socket.
const pool = new Pool(upstream.origin, { connections: 128, keepAliveTimeout: 65_000 });
const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.post('/v1/chat/completions', async (req, res, next) => {
  try {
    // Read whole, then sent as one buffer: ~10% more requests/s here than undici streaming the
    // request itself, so the stricter floor.
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-or-v1-floor' };
    const answer = await pool.request({ path, method: 'POST', headers, body: Buffer.concat(parts) });
    res.status(answer.statusCode);
    const type = answer.headers['content-type'];
    if (typeof type === 'string') res.setHeader('content-type', type);
    await pipeline(answer.body, res);
  } catch (err) {
    // A client that went away mid-answer (the load generator stopping) is no error to report.
    if (res.headersSent || (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') res.destroy();
    else next(err);
  }
});
const server = app.listen(0, '127.0.0.1', () => console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
server.keepAliveTimeout = 65_000;
process.once('SIGTERM', () => process.exit(0));
