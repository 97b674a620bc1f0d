/**
 * The axios reference: a bare Express 5 route that forwards the body to the upstream with axios
 * over keep-alive and answers with its JSON. No validation, rotation or logging. (The floor this
 * stack allows is scripts/bench/floor.ts, with undici.)
 * `node dist/scripts/bench/reference.js <upstream base URL>` prints its own URL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import express from 'express';

const upstream = process.argv[2];
const client = axios.create({ baseURL: upstream, httpAgent: new http.Agent({ keepAlive: true, maxSockets: 512 }), validateStatus: () => true, proxy: false });
const app = express();
app.use(express.json({ limit: '1mb' }));
app.post('/v1/chat/completions', async (req, res) => {
  const r = await client.post('/chat/completions', req.body, { headers: { Authorization: 'Bearer sk-or-v1-reference' } });
  res.status(r.status).json(r.data);
});
const server = app.listen(0, '127.0.0.1', () => console.log(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
server.keepAliveTimeout = 65_000;
process.once('SIGTERM', () => process.exit(0));
