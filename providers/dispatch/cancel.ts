/**
 * How orche hears that a client went away: what it reads of an AbortSignal (`aborted`, its 'abort'
 * listeners). An AbortSignal is one; so is a ClientGone, which costs next to nothing until a caller
 * needs a real signal (issue 21: making one per request was ~4 % of orche's CPU).
 */
export interface Cancel {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A request's client: aborted once, when it leaves before its answer is sent. Each listener runs at most once. */
export class ClientGone implements Cancel {
  aborted = false;
  private listeners: Array<() => void> = [];
  private controller?: AbortController;

  addEventListener(_type: 'abort', listener: () => void, _options?: { once?: boolean }): void {
    if (!this.aborted) this.listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort();
    for (const listener of this.listeners.splice(0)) listener();
  }

  /** A real AbortSignal that follows this one, made on first use (AbortSignal.any takes no other). */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }
}

/** The AbortSignal of a Cancel, for APIs that take only a real one. */
export function signalOf(cancel: Cancel): AbortSignal {
  return cancel instanceof ClientGone ? cancel.signal : (cancel as AbortSignal);
}
