/**
 * Paced recovery and fair sharing as pure rules (providers/dispatch/fairQueue.ts, providers/dispatch/waitRoom.ts):
 * a fake clock and fake timers, no waiting.
 */
import { FairQueue } from '../../providers/dispatch/fairQueue';
import { type RoomClock, type Ticket, WaitEnded, WaitRoom } from '../../providers/dispatch/waitRoom';

class FakeClock implements RoomClock {
  t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];
  now = () => this.t;
  setTimer = (fn: () => void, ms: number) => {
    const timer = { at: this.t + ms, fn, cancelled: false };
    this.timers.push(timer);
    return timer;
  };
  clearTimer = (timer: unknown) => {
    (timer as { cancelled: boolean }).cancelled = true;
  };
  /** Moves the clock to `to`, firing due timers in time order. */
  async advance(to: number): Promise<void> {
    for (;;) {
      const due = this.timers.filter((x) => !x.cancelled && x.at <= to).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.cancelled = true;
      this.t = due.at;
      due.fn();
      await flush();
    }
    this.t = to;
    await flush();
  }
  pending(): number[] {
    return this.timers.filter((x) => !x.cancelled).map((x) => x.at - this.t);
  }
}

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('FairQueue: clients in turn, each client in arrival order', () => {
  const drain = <T>(q: FairQueue<T>) => {
    const out: T[] = [];
    for (let x = q.shift(); x; x = q.shift()) out.push(x.item);
    return out;
  };

  test.each([
    ['one client: arrival order', [['a', 1], ['a', 2], ['a', 3]], [1, 2, 3]],
    ['two clients alternate, whatever the order of arrival', [['h', 'h1'], ['h', 'h2'], ['h', 'h3'], ['l', 'l1'], ['h', 'h4'], ['l', 'l2']], ['h1', 'l1', 'h2', 'l2', 'h3', 'h4']],
    ['a heavy client at 10:1 gets one turn per light turn', [...Array.from({ length: 10 }, (_, i) => ['h', `h${i}`]), ['l', 'l0'], ['l', 'l1']], ['h0', 'l0', 'h1', 'l1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9']],
    ['three clients round-robin', [['a', 'a1'], ['b', 'b1'], ['c', 'c1'], ['a', 'a2'], ['b', 'b2']], ['a1', 'b1', 'c1', 'a2', 'b2']],
  ] as Array<[string, Array<[string, unknown]>, unknown[]]>)('%s', (_name, pushes, expected) => {
    const q = new FairQueue<unknown>();
    for (const [client, item] of pushes) q.push(client, item);
    expect(q.size).toBe(pushes.length);
    expect(drain(q)).toEqual(expected);
    expect(q.size).toBe(0);
  });

  test('a new client joins last in the current round; unshift gives back the turn; remove keeps the order', () => {
    const q = new FairQueue<string>();
    q.push('a', 'a1');
    q.push('a', 'a2');
    q.push('b', 'b1');
    expect(q.shift()!.item).toBe('a1');
    q.push('c', 'c1'); // b is next, then c, then a again
    const b = q.shift()!;
    expect(b.item).toBe('b1');
    q.unshift('b', 'b1'); // b could not be served: its turn comes again
    expect(q.shift()!.item).toBe('b1');
    expect(q.remove('a', 'a2')).toBe(true);
    expect(q.remove('a', 'a2')).toBe(false);
    expect(drain(q)).toEqual(['c1']);
  });
});

describe('WaitRoom: one turn at a time, at the soonest recovery, within each deadline', () => {
  function room(maxQueue = 10) {
    const clock = new FakeClock();
    return { clock, room: new WaitRoom(maxQueue, clock) };
  }

  test('nobody is woken before the recovery time; then one at a time, the next when the previous has picked', async () => {
    const { clock, room: r } = room();
    const T = clock.t;
    const woken: string[] = [];
    const tickets = new Map<string, Ticket>();
    for (const name of ['a', 'b', 'c']) {
      void r.join(name, T + 10_000, T + 2_000).then((t) => {
        woken.push(name);
        tickets.set(name, t);
      });
    }
    await clock.advance(T + 1_999);
    expect(woken).toEqual([]);
    await clock.advance(T + 2_000);
    expect(woken).toEqual(['a']); // exactly at the recovery, not a second later
    expect(r.busy).toBe(true);
    r.picked(tickets.get('a')!);
    await flush();
    expect(woken).toEqual(['a', 'b']);
    // b finds no key (the remaining budget is spent): first in line again, the room waits for the next recovery.
    const back = r.retry(tickets.get('b')!, T + 12_000 - 2_500);
    await clock.advance(T + 9_000);
    expect(woken).toEqual(['a', 'b']);
    await clock.advance(T + 9_500);
    await back;
    expect(woken).toEqual(['a', 'b']); // b holds the turn again (retry resolved); c still waits
    r.picked(tickets.get('b')!);
    await flush();
    expect(woken).toEqual(['a', 'b', 'c']);
  });

  test('a release never goes past what the picks allow: each woken request picks before the next wakes', async () => {
    const { clock, room: r } = room();
    const T = clock.t;
    let budget = 2;
    const served: number[] = [];
    const failed: string[] = [];
    const request = async (i: number) => {
      let t = await r.join(`c${i}`, T + 5_000, T + 1_000);
      for (;;) {
        if (budget > 0) {
          budget--;
          r.picked(t);
          served.push(i);
          return;
        }
        await r.retry(t, T + 60_000).catch((e: WaitEnded) => failed.push(`${i}:${e.why}`));
        if (failed.some((f) => f.startsWith(`${i}:`))) return;
        t = t as Ticket;
      }
    };
    const all = Promise.all([0, 1, 2, 3].map((i) => request(i).catch((e: WaitEnded) => failed.push(`${i}:${e.why}`))));
    await clock.advance(T + 1_000);
    expect(served).toEqual([0, 1]);
    await clock.advance(T + 5_000);
    await all;
    expect(served).toEqual([0, 1]);
    expect(failed.sort()).toEqual(['2:deadline', '3:deadline']);
  });

  test('each waiting request is turned away at its own deadline, whatever order they joined in; one timer, at the soonest', async () => {
    const { clock, room: r } = room(2000);
    const T = clock.t;
    const ended: Array<[number, number]> = [];
    // 1000 waiting for a recovery far off; deadlines out of arrival order (a request that started
    // earlier may join later, after its own calls).
    const deadlines = Array.from({ length: 1000 }, (_, i) => T + 1_000 + ((i * 7919) % 1000) * 10);
    deadlines.forEach((d, i) => void r.join(`c${i % 10}`, d, T + 60_000).catch(() => ended.push([i, clock.t])));
    await flush();
    expect(clock.pending()).toEqual([1_000]);
    await clock.advance(T + 5_000);
    const due = deadlines.map((d, i) => [i, d] as [number, number]).filter(([, d]) => d <= T + 5_000);
    expect(ended.sort((a, b) => a[0] - b[0])).toEqual(due);
    await clock.advance(T + 20_000);
    expect(ended).toHaveLength(1000);
    expect(r.busy).toBe(false);
    expect(clock.pending()).toEqual([]);
  });

  test('the line is bounded: beyond maxQueue a request fails at once', async () => {
    const { clock, room: r } = room(2);
    const T = clock.t;
    void r.join('a', T + 1_000, T + 500).catch(() => {});
    void r.join('b', T + 1_000, T + 500).catch(() => {});
    await expect(r.join('c', T + 1_000, T + 500)).rejects.toEqual(new WaitEnded('full'));
  });

  test('an aborted request leaves the line; a kick wakes the next at once', async () => {
    const { clock, room: r } = room();
    const T = clock.t;
    const ac = new AbortController();
    const a = r.join('a', T + 10_000, T + 5_000, ac.signal);
    let bWoken = false;
    void r.join('b', T + 10_000, T + 5_000).then(() => (bWoken = true));
    ac.abort();
    await expect(a).rejects.toEqual(new WaitEnded('aborted'));
    r.kick();
    await flush();
    expect(bWoken).toBe(true);
    expect(clock.t).toBe(T);
  });

  test('slow start: after a 429 that taught no limit, 1 call in flight, then 2, then 4; over when the demand ends', async () => {
    const { clock, room: r } = room();
    const T = clock.t;
    const turns: Ticket[] = [];
    const join = (n: number) => {
      for (let i = 0; i < n; i++) void r.join('c', T + 60_000, undefined).then((t) => turns.push(t));
    };
    // One call was let through and came back rate-limited with no known limit.
    join(1);
    await flush();
    r.picked(turns.shift()!);
    join(8);
    r.finished('rate_limited_unknown');
    await flush();
    expect(r.concurrency).toBe(1);
    // Every request woken picks at once; how many got through before the room stopped waking.
    const inFlight = async () => {
      let n = 0;
      while (turns.length > 0) {
        for (const t of turns.splice(0)) {
          r.picked(t);
          n++;
        }
        await flush();
      }
      return n;
    };
    // Trial call: one.
    expect(await inFlight()).toBe(1);
    r.finished('success');
    await flush();
    expect(r.concurrency).toBe(2);
    expect(await inFlight()).toBe(2);
    r.finished('success');
    r.finished('success');
    await flush();
    expect(r.concurrency).toBe(4);
    expect(await inFlight()).toBe(4);
    for (let i = 0; i < 4; i++) r.finished('success');
    await flush();
    expect(r.concurrency).toBe(8);
    expect(await inFlight()).toBe(1); // what was left
    r.finished('success');
    expect(r.concurrency).toBe(Infinity); // the demand ended
    expect(clock.pending()).toEqual([]);
  });

  test('slowStart: a request whose own call met that 429 starts the slow start as it joins; an empty room ends it', async () => {
    const { clock, room: r } = room();
    const T = clock.t;
    const turns: Ticket[] = [];
    // The call did not come through the room: the room starts slow anyway, then the request waits for the reset.
    r.slowStart();
    void r.join('c', T + 60_000, T + 1_000).then((t) => turns.push(t));
    for (let i = 0; i < 3; i++) void r.join('c', T + 60_000, undefined).then((t) => turns.push(t));
    await flush();
    expect(r.concurrency).toBe(1);
    expect(turns).toHaveLength(0);
    await clock.advance(T + 1_000);
    expect(turns).toHaveLength(1);
    r.picked(turns.shift()!);
    await flush();
    // The trial call is in flight: nobody else goes until it ends.
    expect(turns).toHaveLength(0);
    r.finished('success');
    await flush();
    expect(r.concurrency).toBe(2);
    r.picked(turns.shift()!);
    await flush();
    r.picked(turns.shift()!);
    await flush();
    expect(turns).toHaveLength(0);
    // A slowStart with nobody waiting after it does not outlive the demand.
    const idle = room().room;
    idle.slowStart();
    idle.kick();
    expect(idle.concurrency).toBe(Infinity);
  });
});
