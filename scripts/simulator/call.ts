/** One in-flight chat call: its record, its timers, and how its answer reaches the socket. */
import type { ServerResponse } from 'node:http';
import type { RuleBook } from './faults';
import type { Registry } from './registry';
import type { Reply } from './responses';
import type { CallRecord } from './types';

/** What a call needs from the running simulator. */
export interface Core {
  readonly now: () => number;
  readonly registry: Registry;
  readonly rules: RuleBook;
  readonly models: ReadonlySet<string>;
  readonly accountLimits: 'free' | 'all' | 'off';
  readonly retryAfter: boolean;
  readonly stream: { chunks: number; chunkDelayMs: number; processingComment: boolean; roleDelta: boolean };
  readonly latencyMs: number;
  /** True once close() began: sockets it destroys were not closed by the client. */
  readonly closing: boolean;
  nextSeq(): number;
  /** A chat call arrived; returns how many are in flight now, itself included. */
  enter(): number;
  /** A chat call's connection closed (answered, cut or abandoned). */
  leave(): void;
  record(rec: CallRecord): void;
  /** Resolves when the gate `name` is released. */
  gate(name: string): Promise<void>;
  schedule(ms: number, fn: () => void): NodeJS.Timeout;
  cancel(timer: NodeJS.Timeout): void;
}

export class Call {
  private timer: NodeJS.Timeout | undefined;
  /** Set when the simulator itself cuts the connection (reset, truncated). */
  private serverClosed = false;

  constructor(readonly core: Core, readonly res: ServerResponse, readonly rec: CallRecord) {
    res.on('close', this.onClose);
  }

  private readonly onClose = (): void => {
    if (this.timer !== undefined) {
      this.core.cancel(this.timer);
      this.timer = undefined;
    }
    if (!this.res.writableFinished && !this.serverClosed && !this.core.closing) this.rec.closedByClient = true;
  };

  /** True when nothing more can be written (client gone or simulator closing). */
  get gone(): boolean {
    return this.res.destroyed;
  }

  /** Runs `fn` after `ms` unless the connection goes away first; `ms <= 0` runs it now. */
  later(ms: number, fn: () => void): void {
    if (ms <= 0) {
      fn();
      return;
    }
    this.timer = this.core.schedule(ms, () => {
      this.timer = undefined;
      if (!this.gone) fn();
    });
  }

  /** Runs `fn` after the simulator's artificial latency. */
  afterLatency(fn: () => void): void {
    this.later(this.core.latencyMs, fn);
  }

  /** Sends a JSON reply after the artificial latency. */
  answer(reply: Reply): void {
    this.rec.outcome = reply.outcome;
    this.afterLatency(() => this.sendJson(reply.status, reply.headers, reply.body));
  }

  sendJson(status: number, headers: Record<string, string | number>, body: string): void {
    this.rec.status = status;
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(body);
    this.res.writeHead(status, headers);
    this.res.end(body);
  }

  sendRaw(status: number, contentType: string, body: string): void {
    this.rec.status = status;
    this.res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
    this.res.end(body);
  }

  /** Cuts the connection without an answer. */
  reset(): void {
    this.serverClosed = true;
    this.res.socket?.destroy();
  }

  /** Announces `body` in full, sends about half of it, then cuts the connection. */
  truncate(body: string): void {
    this.rec.status = 200;
    this.serverClosed = true;
    this.res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) + 64 });
    this.res.write(body.slice(0, Math.floor(body.length / 2)), () => this.res.socket?.destroy());
  }

  /**
   * Writes SSE events, `delayMs` apart, then ends the response. `hold`: after `afterChunks` data
   * chunks, nothing more is written until `open` resolves.
   */
  sendEvents(events: readonly string[], delayMs: number, hold?: { afterChunks: number; open: Promise<void> }): void {
    this.rec.status = 200;
    this.res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    if (delayMs <= 0 && hold === undefined) {
      this.rec.chunksSent += events.filter((e) => e.startsWith('data: ')).length;
      this.res.end(events.join(''));
      return;
    }
    let i = 0;
    let held = false;
    const step = (): void => {
      const ev = events[i++];
      this.res.write(ev);
      if (ev.startsWith('data: ')) this.rec.chunksSent++;
      if (i >= events.length) return void this.res.end();
      if (hold && !held && this.rec.chunksSent >= hold.afterChunks) {
        held = true;
        void hold.open.then(() => {
          if (!this.gone) this.later(delayMs, step);
        });
        return;
      }
      this.later(delayMs, step);
    };
    step();
  }
}
