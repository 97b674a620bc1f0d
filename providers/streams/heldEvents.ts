import type { SseEvent } from './sse';

/** What a stream may hold before it is committed to the client (docs/design.md#streaming). */
export const MAX_HELD_CHARS = 64 * 1024;

/**
 * The events read from an upstream stream before it is committed (before any byte reaches the
 * client): they are held so the attempt can still be retried on another key. An upstream may send
 * keep-alive comments without end before its first data event (4 s of `:\n\n` is 3.6 M events);
 * beyond the bound further comments are dropped, not held — a comment carries nothing the client
 * needs, and the ones already held keep the client's connection alive just as well. Counted in
 * characters of the events' raw text.
 */
export class HeldEvents {
  readonly events: SseEvent[] = [];
  chars = 0;
  /** Comments dropped because the bound was reached. */
  dropped = 0;

  constructor(private readonly max = MAX_HELD_CHARS) {}

  /**
   * Holds an event that does not commit the stream. A comment over the bound is dropped (true: go
   * on reading); a data event over it is not held and false is returned: the caller commits (or
   * gives up on) the stream rather than holding more.
   */
  hold(ev: SseEvent): boolean {
    if (this.chars + ev.raw.length <= this.max) {
      this.events.push(ev);
      this.chars += ev.raw.length;
      return true;
    }
    if (ev.data === undefined) {
      this.dropped++;
      return true;
    }
    return false;
  }

  /** The event that commits the stream is always kept: it is what the client is waiting for. */
  commit(ev: SseEvent): SseEvent[] {
    this.events.push(ev);
    this.chars += ev.raw.length;
    return this.events;
  }
}
