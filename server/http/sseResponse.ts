import type { Response } from 'express';
import { errorChunk, SSE_DONE } from '../../providers/streams/sse';
import type { StreamSink } from '../../providers/streams/streamRelay';

/** Headers of every stream: no caching, and no proxy buffering (nginx honours X-Accel-Buffering). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  'X-Accel-Buffering': 'no',
};

/**
 * How long a stream waits for its client to take what was written (docs/design.md#streams-that-outlive-their-reader): at most the idle
 * timeout for one wait, and never past the stream's end of life (ORCHE_MAX_STREAM_MS), with a
 * moment after that for the last bytes (the error chunk, [DONE]) of a client still reading.
 */
export interface StallBounds {
  idleMs: number;
  maxMs?: number;
}

/** After the stream's end of life, the time a reading client gets to take its last bytes. */
export const LAST_BYTES_MS = 1000;

/**
 * An Express response as a stream of SSE text, written as it comes, with backpressure. A client
 * that stops reading is not waited for past its bounds: its connection is closed, which aborts
 * the upstream call (the relay's client signal) and frees its stream slot (the response's 'close').
 */
export class SseResponse {
  /** One wait for 'drain' shared by every writer (a fan-out writes from many legs at once). */
  private drained: Promise<void> | undefined;
  private endsAt = Infinity;
  /** Closed by orche because the client stopped reading. */
  stalled = false;

  constructor(
    private readonly res: Response,
    private readonly bounds: StallBounds = { idleMs: Infinity },
    private readonly onStall: () => void = () => undefined,
  ) {}

  /** Status and headers go out now; anything set on the response before (X-Orche-*, X-Request-Id) goes with them. */
  open(): void {
    if (this.bounds.maxMs !== undefined) this.endsAt = Date.now() + this.bounds.maxMs;
    this.res.status(200);
    for (const [name, value] of Object.entries(SSE_HEADERS)) this.res.setHeader(name, value);
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  /** Resolves once the text is handed to the socket, or at once when the client is gone. */
  write(text: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.res.write(text)) return Promise.resolve();
    this.drained ??= new Promise<void>((resolve) => {
      const timer = this.stallTimer();
      const done = () => {
        clearTimeout(timer);
        this.res.off('drain', done);
        this.res.off('close', done);
        this.drained = undefined;
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
    return this.drained;
  }

  /** The last bytes may still wait in the socket's buffer: a client that never takes them is closed as well. */
  end(): void {
    if (this.closed) return;
    this.res.end();
    if (this.res.writableFinished) return;
    const timer = this.stallTimer();
    this.res.once('finish', () => clearTimeout(timer));
    this.res.once('close', () => clearTimeout(timer));
  }

  /** Closes the connection unless the client takes what waits for it in time (no timer without a bound). */
  private stallTimer(): NodeJS.Timeout | undefined {
    const ms = Math.min(this.bounds.idleMs, Math.max(this.endsAt - Date.now(), LAST_BYTES_MS));
    if (!Number.isFinite(ms)) return undefined;
    const timer = setTimeout(() => {
      if (this.res.destroyed) return;
      this.stalled = true;
      this.onStall();
      this.res.destroy();
    }, Math.min(ms, 2 ** 31 - 1));
    // It guards a connection; it does not keep the process up on its own.
    timer.unref();
    return timer;
  }
}

/** The client's stream: upstream events byte for byte; a failure after the first byte as OpenRouter's error chunk and [DONE]. */
export function relaySink(out: SseResponse): StreamSink {
  return {
    event: (ev) => out.write(ev.raw),
    async fail(error, _outcome, stream) {
      await out.write(errorChunk(error, stream) + SSE_DONE);
    },
  };
}
