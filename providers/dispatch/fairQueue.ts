/**
 * The order waiting requests are served in (SPEC §7, issue 13): clients in turn, each client's
 * requests in arrival order, so a client sending ten times more cannot starve the others.
 * Pure data structure; the wait room (waitRoom.ts) drives it.
 */
export class FairQueue<T> {
  private readonly queues = new Map<string, T[]>();
  /** Clients with waiting items, in turn order; `turn` indexes the next one to serve. */
  private order: string[] = [];
  private turn = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** A new arrival: the end of its client's line; a new client joins the turn order last. */
  push(client: string, item: T): void {
    const q = this.queues.get(client);
    if (q) q.push(item);
    else {
      this.queues.set(client, [item]);
      // Joins just before the client whose turn is next: last in the current round.
      this.order.splice(this.turn, 0, client);
      this.turn++;
      if (this.turn >= this.order.length) this.turn = 0;
    }
    this.count++;
  }

  /** The next item in fair order, or undefined when empty; its client's turn is used. */
  shift(): { client: string; item: T } | undefined {
    if (this.count === 0) return undefined;
    if (this.turn >= this.order.length) this.turn = 0;
    const client = this.order[this.turn];
    const q = this.queues.get(client)!;
    const item = q.shift()!;
    this.count--;
    if (q.length === 0) {
      this.queues.delete(client);
      this.order.splice(this.turn, 1);
    } else this.turn++;
    if (this.turn >= this.order.length) this.turn = 0;
    return { client, item };
  }

  /**
   * An item taken by `shift` that could not be served after all: first in its client's line again,
   * and its client's turn comes next, as if it had never been taken.
   */
  unshift(client: string, item: T): void {
    const q = this.queues.get(client);
    if (q) {
      q.unshift(item);
      const at = this.order.indexOf(client);
      this.turn = at;
    } else {
      this.queues.set(client, [item]);
      this.order.splice(this.turn, 0, client);
    }
    this.count++;
  }

  /** Removes a waiting item (its client gave up); true if it was there. */
  remove(client: string, item: T): boolean {
    const q = this.queues.get(client);
    const i = q ? q.indexOf(item) : -1;
    if (!q || i < 0) return false;
    q.splice(i, 1);
    this.count--;
    if (q.length === 0) {
      this.queues.delete(client);
      const at = this.order.indexOf(client);
      this.order.splice(at, 1);
      if (at < this.turn) this.turn--;
      if (this.turn >= this.order.length) this.turn = 0;
    }
    return true;
  }
}
