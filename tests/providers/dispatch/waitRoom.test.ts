/**
 * Paced recovery and fair sharing as pure rules (providers/dispatch/fairQueue.ts, providers/dispatch/waitRoom.ts):
 * a fake clock and fake timers, no waiting.
 */
import { type Contender, FairQueue, leastServed, type ServedView } from '../../../providers/dispatch/fairQueue';
import { type Ticket, WaitEnded, WaitRoom } from '../../../providers/dispatch/waitRoom';
import { FakeRoomClock, flush } from '../../helpers/fakeRoomClock';



describe('FairQueue: least served first, clients before end users, then arrival order', () => {
  /** Drains the queue as releases do: each item served counts for its client and end user, on top of `base`. */
  const drain = <T>(q: FairQueue<T>, base: Record<string, number> = {}) => {
    const counts = new Map<string, number>(Object.entries(base));
    const view: ServedView = { client: (c) => counts.get(c) ?? 0, user: (c, u) => counts.get(`${c}/${u}`) ?? 0 };
    const out: T[] = [];
    for (let x = q.shift(view); x; x = q.shift(view)) {
      out.push(x.item);
      counts.set(x.client, (counts.get(x.client) ?? 0) + 1);
      counts.set(`${x.client}/${x.user}`, (counts.get(`${x.client}/${x.user}`) ?? 0) + 1);
    }
    return out;
  };

  test.each([
    ['one client: arrival order', [['a', 1], ['a', 2], ['a', 3]], {}, [1, 2, 3]],
    // On a tie of served counts the client with fewer waiting goes first: the lighter demand, as max-min fairness fills it.
    ['two clients alternate, whatever the order of arrival; the lighter first on a tie', [['h', 'h1'], ['h', 'h2'], ['h', 'h3'], ['l', 'l1'], ['h', 'h4'], ['l', 'l2']], {}, ['l1', 'h1', 'l2', 'h2', 'h3', 'h4']],
    ['a heavy client at 10:1 gets one turn per light turn', [...Array.from({ length: 10 }, (_, i) => ['h', `h${i}`]), ['l', 'l0'], ['l', 'l1']], {}, ['l0', 'h0', 'l1', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9']],
    ['three clients round-robin', [['a', 'a1'], ['b', 'b1'], ['c', 'c1'], ['a', 'a2'], ['b', 'b2']], {}, ['c1', 'a1', 'b1', 'a2', 'b2']],
    // Served earlier in the window (its requests came spread out and were served at once): the other catches up first.
    ['a client served 3 already this window waits until the other has caught up', [['h', 'h1'], ['h', 'h2'], ['l', 'l1'], ['l', 'l2'], ['l', 'l3'], ['l', 'l4']], { h: 3 }, ['l1', 'l2', 'l3', 'l4', 'h1', 'h2']],
    ['equal counts: the line whose oldest request came first', [['b', 'b1'], ['a', 'a1']], { a: 2, b: 2 }, ['b1', 'a1']],
    // End users take turns only within their client: five names buy the heavy client no more turns.
    ['a new end user per request buys no turns', [['h/u1', 'h1'], ['h/u2', 'h2'], ['h/u3', 'h3'], ['h/u4', 'h4'], ['h/u5', 'h5'], ['l', 'l1'], ['l', 'l2']], {}, ['l1', 'h1', 'l2', 'h2', 'h3', 'h4', 'h5']],
    ['within a client, the end user served least', [['c/ann', 'a1'], ['c/ann', 'a2'], ['c/ann', 'a3'], ['c/bob', 'b1']], { 'c/ann': 1 }, ['b1', 'a1', 'a2', 'a3']],
  ] as Array<[string, Array<[string, unknown]>, Record<string, number>, unknown[]]>)('%s', (_name, pushes, base, expected) => {
    const q = new FairQueue<unknown>();
    for (const [who, item] of pushes) {
      const [client, user] = who.split('/');
      q.push(client, item, user);
    }
    expect(q.size).toBe(pushes.length);
    expect(drain(q, base)).toEqual(expected);
    expect(q.size).toBe(0);
  });

  test('unshift puts an item back first; remove keeps the order; largest and newest name the client to trim', () => {
    const q = new FairQueue<string>();
    q.push('a', 'a1');
    q.push('a', 'a2');
    q.push('b', 'b1');
    expect(q.largest()).toBe('a');
    expect(q.newest('a')).toEqual({ user: '', item: 'a2' });
    q.push('b', 'b2'); // as many waiting as a: the tie goes to the oldest, a1
    const first = q.shift()!;
    expect(first.item).toBe('a1');
    q.unshift('a', 'a1'); // a1 could not be served: before everything that arrived
    expect(q.shift()!.item).toBe('a1');
    expect(q.remove('a', 'a2')).toBe(true);
    expect(q.remove('a', 'a2')).toBe(false);
    expect(q.countOf('a')).toBe(0);
    expect(q.shift()!.item).toBe('b1');
    expect(q.shift()!.item).toBe('b2');
    expect(q.size).toBe(0);
  });

  test.each([
    ['served least wins', [{ key: 'a', served: 2, oldest: 1 }, { key: 'b', served: 1, oldest: 9 }], 'b'],
    ['a tie goes to the oldest', [{ key: 'a', served: 1, oldest: 5 }, { key: 'b', served: 1, oldest: 3 }], 'b'],
    ['a tie goes to fewer waiting before the oldest', [{ key: 'a', served: 1, oldest: 5, waiting: 1 }, { key: 'b', served: 1, oldest: 3, waiting: 9 }], 'a'],
    ['served least wins over fewer waiting', [{ key: 'a', served: 2, oldest: 1, waiting: 1 }, { key: 'b', served: 1, oldest: 9, waiting: 9 }], 'b'],
    ['nobody', [], undefined],
  ] as Array<[string, Contender[], string | undefined]>)('leastServed: %s', (_name, contenders, expected) => {
    expect(leastServed(contenders)).toBe(expected);
  });
});

describe('WaitRoom: one turn at a time, at the soonest recovery, within each deadline', () => {
  function room(maxQueue = 10) {
    const clock = new FakeRoomClock(1_000_000);
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
