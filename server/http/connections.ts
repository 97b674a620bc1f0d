/**
 * Client connections are bounded (docs/design.md#connections "Hostile connections and data"). Node's
 * defaults (headers within 60 s checked every 30 s, a whole request within 300 s, no cap) let one
 * anonymous client hold ~1,100 sockets that send nothing and so use up the process's file limit:
 * every new connection is then reset and no upstream socket can be opened.
 *
 * Here: the header and request bounds are checked often enough to mean what they say; open client
 * connections are capped below the file limit (half of it by default: the other half is for the
 * upstream sockets those connections cause, Redis, the snapshot file); and at the cap the
 * connection that has been idle longest (no request in progress: it sent nothing, half a header,
 * or sits between keep-alive requests) is closed for the newcomer, so new clients keep being
 * served while one client holds many sockets. A connection with a request in progress is never
 * closed for another; when every one has, the newcomer is refused.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionsConfig } from '../../config';
import { onResponseEnd } from './requestLog';

/**
 * The soft limit of open files of this process: /proc/self/limits on Linux, else `ulimit -n` from
 * the shell (macOS, BSD), else undefined. Node raises its soft limit to the hard one at start, so
 * this is read after that. `unlimited` is Infinity.
 */
export function fileLimit(): number | undefined {
  const parse = (v: string | undefined) => (v === 'unlimited' ? Infinity : v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined);
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = parse(line?.split(/\s{2,}/)[1]?.trim());
    if (soft !== undefined) return soft;
  } catch {
    // not Linux: ask the shell
  }
  try {
    return parse(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    return undefined;
  }
}

/** Assumed when the limit cannot be read: the usual soft limit on Linux. */
const ASSUMED_FILE_LIMIT = 1024;
/** With no file limit at all, a cap still bounds memory. */
const UNLIMITED_CAP = 32_768;

/** Half the file limit: every client connection may cause an upstream socket, and files, Redis and libuv need a few. */
export function defaultMaxConnections(limit: number | undefined): number {
  if (limit === Infinity) return UNLIMITED_CAP;
  return Math.max(1, Math.floor((limit ?? ASSUMED_FILE_LIMIT) / 2));
}

/**
 * Node's own options for the bounds. It checks the header and request deadlines on a timer
 * (30 s by default, so a 10 s bound held sockets up to 40 s): here four times per header bound, at
 * most once a second.
 */
export function serverOptions(c: ConnectionsConfig): ServerOptions {
  return {
    headersTimeout: c.headersTimeoutMs,
    requestTimeout: c.requestTimeoutMs,
    keepAliveTimeout: c.keepAliveTimeoutMs,
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(c.headersTimeoutMs / 4))),
  };
}

export interface ConnectionCount {
  open: number;
  max: number;
}

/** Counts the server's connections and, past `max`, closes the longest-idle one (see the top). */
export function guardConnections(server: Server, max: number): () => ConnectionCount {
  let open = 0;
  /** Connections with no request in progress, longest idle first (a Set keeps insertion order). */
  const idle = new Set<Socket>();
  const busy = new WeakMap<Socket, number>();
  server.on('connection', (socket: Socket) => {
    open++;
    idle.add(socket);
    socket.once('close', () => {
      open--;
      idle.delete(socket);
    });
    if (open > max) idle.values().next().value?.destroy();
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    idle.delete(socket);
    // Once, at the first of 'finish' and 'close', on the listeners every response's end hooks share.
    onResponseEnd(res, () => {
      const left = (busy.get(socket) ?? 1) - 1;
      busy.set(socket, left);
      if (left === 0 && !socket.destroyed) idle.add(socket);
    });
  });
  return () => ({ open, max });
}
