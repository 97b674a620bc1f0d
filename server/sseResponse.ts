import type { Response } from 'express';
import { errorChunk, SSE_DONE } from '../providers/streams/sse';
import type { StreamSink } from '../providers/streams/streamRelay';

/** Headers of every stream: no caching, and no proxy buffering (nginx honours X-Accel-Buffering). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache',
  'X-Accel-Buffering': 'no',
};

/** An Express response as a stream of SSE text, written as it comes, with backpressure. */
export class SseResponse {
  /** One wait for 'drain' shared by every writer (a fan-out writes from many legs at once). */
  private drained: Promise<void> | undefined;

  constructor(private readonly res: Response) {}

  /** Status and headers go out now; anything set on the response before (X-Orche-*, X-Request-Id) goes with them. */
  open(): void {
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
      const done = () => {
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

  end(): void {
    if (!this.closed) this.res.end();
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
