import type { Server } from 'node:http';
import type { RequestHandler } from 'express';
import { onResponseEnd } from '../http/requestLog';

/** Counts requests in flight (JSON and streams alike) so a shutdown can wait for them. */
export class InFlight {
  private count = 0;
  private waiters: Array<() => void> = [];
  /** Once set, responses ask keep-alive clients to close their connection. */
  closing = false;

  readonly middleware: RequestHandler = (_req, res, next) => {
    this.count++;
    if (this.closing) res.setHeader('Connection', 'close');
    onResponseEnd(res, () => {
      this.count--;
      if (this.count === 0) for (const w of this.waiters.splice(0)) w();
    });
    next();
  };

  get size(): number {
    return this.count;
  }

  /** Resolves when nothing is in flight. */
  drained(): Promise<void> {
    return this.count === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Stops accepting connections, lets requests in flight finish until `graceMs`, then cuts what is left.
 * Resolves with how many requests had to be cut.
 */
export async function drainServer(server: Server, inflight: InFlight, graceMs: number): Promise<number> {
  inflight.closing = true;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), graceMs)));
  const outcome = await Promise.race([inflight.drained().then(() => 'drained' as const), deadline]);
  clearTimeout(timer);
  const cut = outcome === 'deadline' ? inflight.size : 0;
  // Finished responses leave idle keep-alive sockets behind; past the deadline, busy ones go too.
  server.closeAllConnections();
  await closed;
  return cut;
}
