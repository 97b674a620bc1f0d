/**
 * The order waiting requests are served in (docs/design.md#pacing-and-fairness): least served first. Each release
 * goes to the client served least in the current window, then, within that client, to the end user
 * served least, then to that user's oldest request. Turns go to clients first, so a client that
 * names a new end user per request gets no more turns than one that names none. Ties go to the
 * line with fewer requests waiting (the lighter demand, as max-min fairness fills it first), then to
 * the line whose oldest request came first. Pure data structure; the wait room (waitRoom.ts) drives it
 * with the served counts (shared across instances on Redis: providers/store/fairState.ts).
 */

/** Served counts in the current window: per client, and per end user within a client. */
export interface ServedView {
  client(client: string): number;
  user(client: string, user: string): number;
}

export const NOBODY_SERVED: ServedView = { client: () => 0, user: () => 0 };

export interface Contender {
  key: string;
  served: number;
  /** Arrival order of its oldest waiting request. */
  oldest: number;
  /** Requests it has waiting (fewer wins a tie of served counts); 0 when not known. */
  waiting?: number;
}

/** The contender served least; among equals, the one with fewer waiting, then the one waiting longest. Undefined when none. */
export function leastServed(contenders: Iterable<Contender>): string | undefined {
  let best: Contender | undefined;
  for (const c of contenders) {
    if (best === undefined || c.served < best.served) best = c;
    else if (c.served === best.served) {
      const fewer = (c.waiting ?? 0) - (best.waiting ?? 0);
      if (fewer < 0 || (fewer === 0 && c.oldest < best.oldest)) best = c;
    }
  }
  return best?.key;
}

interface Entry<T> {
  item: T;
  seq: number;
}

export interface Shifted<T> {
  client: string;
  user: string;
  item: T;
}

export class FairQueue<T> {
  /** Per client, its end users' lines (user '' : the client named none), each in arrival order. */
  private readonly clients = new Map<string, Map<string, Array<Entry<T>>>>();
  private readonly perClient = new Map<string, number>();
  private seq = 0;
  /** Items given back by `unshift` come before everything that arrived. */
  private front = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** How many items a client has waiting. */
  countOf(client: string): number {
    return this.perClient.get(client) ?? 0;
  }

  /** How many clients have items waiting. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** The client with the most items waiting (the first such on a tie), or undefined. */
  largest(): string | undefined {
    let best: string | undefined;
    for (const [c, n] of this.perClient) if (best === undefined || n > this.perClient.get(best)!) best = c;
    return best;
  }

  /** A new arrival: the end of its end user's line within its client. */
  push(client: string, item: T, user = ''): void {
    this.add(client, user, { item, seq: ++this.seq }, false);
  }

  /** The next item, least served first (see the file's comment), or undefined when empty. */
  shift(served: ServedView = NOBODY_SERVED): Shifted<T> | undefined {
    if (this.count === 0) return undefined;
    const client = leastServed([...this.clients].map(([key, users]) => ({ key, served: served.client(key), oldest: oldestOf(users), waiting: this.perClient.get(key) })))!;
    const users = this.clients.get(client)!;
    const user = leastServed([...users].map(([key, line]) => ({ key, served: served.user(client, key), oldest: line[0].seq, waiting: line.length })))!;
    const line = users.get(user)!;
    const e = line.shift()!;
    this.removed(client, user, users, line);
    return { client, user, item: e.item };
  }

  /**
   * An item taken by `shift` that could not be served after all: first in its user's line again,
   * and before every other line on a tie, as if it had never been taken.
   */
  unshift(client: string, item: T, user = ''): void {
    this.add(client, user, { item, seq: -(++this.front) }, true);
  }

  /** Removes a waiting item (its client gave up); true if it was there. */
  remove(client: string, item: T, user = ''): boolean {
    const users = this.clients.get(client);
    const line = users?.get(user);
    const i = line ? line.findIndex((e) => e.item === item) : -1;
    if (!users || !line || i < 0) return false;
    line.splice(i, 1);
    this.removed(client, user, users, line);
    return true;
  }

  /** The newest item of a client: the one to turn away when the client holds more than its share. */
  newest(client: string): { user: string; item: T } | undefined {
    let best: { user: string; e: Entry<T> } | undefined;
    for (const [user, line] of this.clients.get(client) ?? []) {
      const e = line[line.length - 1];
      if (e && (best === undefined || e.seq > best.e.seq)) best = { user, e };
    }
    return best && { user: best.user, item: best.e.item };
  }

  /** Each line (client, end user) in order: for deadline checks that depend on the place in line. */
  *lines(): Generator<{ client: string; user: string; items: readonly T[] }> {
    for (const [client, users] of this.clients) for (const [user, line] of users) yield { client, user, items: line.map((e) => e.item) };
  }

  /** The distinct clients and (client, user) pairs waiting: whose served counts a release needs. */
  waitingNames(): { clients: string[]; users: Array<[string, string]> } {
    const clients = [...this.clients.keys()];
    const users: Array<[string, string]> = [];
    for (const [client, u] of this.clients) for (const user of u.keys()) users.push([client, user]);
    return { clients, users };
  }

  private add(client: string, user: string, e: Entry<T>, first: boolean): void {
    let users = this.clients.get(client);
    if (!users) this.clients.set(client, (users = new Map()));
    const line = users.get(user);
    if (!line) users.set(user, [e]);
    else if (first) line.unshift(e);
    else line.push(e);
    this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    this.count++;
  }

  private removed(client: string, user: string, users: Map<string, Array<Entry<T>>>, line: Array<Entry<T>>): void {
    this.count--;
    const n = this.perClient.get(client)! - 1;
    if (line.length === 0) users.delete(user);
    if (n === 0) {
      this.perClient.delete(client);
      this.clients.delete(client);
    } else this.perClient.set(client, n);
  }
}

function oldestOf<T>(users: Map<string, Array<Entry<T>>>): number {
  let oldest = Infinity;
  for (const line of users.values()) if (line[0].seq < oldest) oldest = line[0].seq;
  return oldest;
}
