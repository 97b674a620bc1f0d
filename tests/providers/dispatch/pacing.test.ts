/**
 * Fair, paced release as pure rules (providers/dispatch/pacing.ts) and the wait room driving them
 * (waitRoom.ts with a pacer): tables, an injected clock and fake timers, no waiting.
 */
import { budgetLeft, type BudgetLeft, LAST_CALL_MS, PACE_BURST, paceRelease, type PaceState, soonestRelease } from '../../../providers/dispatch/pacing';
import type { ServedView } from '../../../providers/dispatch/fairQueue';
import { type PaceVerdict, type RoomPacer, type Ticket, WaitEnded, WaitRoom } from '../../../providers/dispatch/waitRoom';
import type { KeyInspection, LearnedView } from '../../../providers/store/types';
import { FakeRoomClock, flush } from '../../helpers/fakeRoomClock';

describe('paceRelease: spread the budget over the rest of the window when more wait than it allows', () => {
  // 10 left for the 10 s to the window's end, 30 waiting, 10 new requests a second arriving.
  const W = { now: 1_000, remaining: 10, windowEnd: 11_000, waiting: 30, arrivalRate: 0.01, burst: 2 };
  test.each([
    ['no contention: as many wait as the budget allows, all go at once', undefined, { ...W, waiting: 10 }, true, 0],
    ['contention, first of the window: the burst goes at once', undefined, W, true, 0],
    ['contention, burst used, next not due: wait for it', { windowEnd: 11_000, released: 2, nextAt: 2_000 }, W, false, 2_000],
    ['contention, next due: go', { windowEnd: 11_000, released: 2, nextAt: 1_000 }, W, true, 0],
    ["a state of another window counts as none: the new window's burst", { windowEnd: 1_000, released: 9, nextAt: 5_000 }, W, true, 0],
    ["budget spent: wait for the window's end", undefined, { ...W, remaining: 0 }, false, 11_000],
    // Budget is held back only for requests expected in the rest of the window.
    ['demand paused (no arrivals lately): nothing is held back, the waiting go', { windowEnd: 11_000, released: 2, nextAt: 2_000 }, { ...W, arrivalRate: 0 }, true, 0],
    ['arrivals expected for 5 of the 10 left: the other 5 go at once', { windowEnd: 11_000, released: 2, nextAt: 2_000 }, { ...W, arrivalRate: 0.0005 }, true, 0],
    ['arrivals expected for all 10 left: paced', { windowEnd: 11_000, released: 2, nextAt: 2_000 }, { ...W, arrivalRate: 0.001 }, false, 2_000],
  ] as Array<[string, PaceState | undefined, typeof W, boolean, number]>)('%s', (_name, state, input, go, at) => {
    const d = paceRelease(state, input);
    expect(d.go).toBe(go);
    if (!d.go) expect(d.at).toBe(at);
  });

  // A last call: every request waiting fits the budget, so the budget held back is only for expected
  // arrivals; a waiting request that would reach its deadline before the schedule's next release
  // takes one now rather than expire beside an unused call.
  const paced: PaceState = { windowEnd: 11_000, released: 2, nextAt: 2_000 };
  test.each([
    ['5 waiting fit the 10 left, one due within LAST_CALL_MS: it goes now', { ...W, waiting: 5, dueBy: 1_000 + LAST_CALL_MS }, true, 0, true],
    ['5 waiting fit, one due before the next release but not yet close: ask again LAST_CALL_MS before its deadline', { ...W, waiting: 5, dueBy: 1_500 }, false, 1_500 - LAST_CALL_MS, false],
    ['30 waiting for 10: every call is somebody\'s turn, the schedule holds', { ...W, dueBy: 1_010 }, false, 2_000, false],
    ['due after the next release: the schedule serves it', { ...W, waiting: 5, dueBy: 2_500 }, false, 2_000, false],
    ['nobody due (no deadline known): the schedule holds', { ...W, waiting: 5 }, false, 2_000, false],
  ] as Array<[string, typeof W & { dueBy?: number }, boolean, number, boolean]>)('last call: %s', (_name, input, go, at, lastCall) => {
    const d = paceRelease(paced, input);
    expect(d.go).toBe(go);
    if (d.go) expect(d.lastCall).toBe(lastCall);
    else expect(d.at).toBe(at);
  });

  test('a last call takes its place in the schedule: the rest spread over what is left', () => {
    const d = paceRelease(paced, { ...W, now: 1_500, waiting: 5, dueBy: 1_520 });
    expect(d).toEqual({ go: true, paced: true, spare: 0, lastCall: true, state: { windowEnd: 11_000, released: 3, nextAt: 1_500 + 9_500 / 10 } });
  });

  test('a release sets the next one remaining-time / remaining-budget later', () => {
    const d = paceRelease(undefined, W);
    expect(d).toEqual({ go: true, paced: true, spare: 0, state: { windowEnd: 11_000, released: 1, nextAt: 1_000 + 10_000 / 10 } });
  });

  test.each([
    // 10 left, 10 s to go: 3 waiting and 2 expected (0.2 a second) leave 4 after this release.
    ['3 waiting, 2 expected, 10 left: 4 spare after this one', { ...W, waiting: 3, arrivalRate: 0.0002 }, 4],
    ['nobody waiting or expected: all but this one are spare', { ...W, waiting: 0, arrivalRate: 0 }, 9],
    ['contended: none spare', W, 0],
    ['exactly the budget wanted: none spare', { ...W, waiting: 9, arrivalRate: 0 }, 0],
  ] as Array<[string, typeof W, number]>)('spare calls: %s', (_name, input, spare) => {
    const d = paceRelease(undefined, input);
    expect(d.go).toBe(true);
    expect(d.go && d.spare).toBe(spare);
  });

  test.each([
    // 4 per 2 s window, 8 waiting: 2 at once, then one every remaining-time / remaining-budget: 2000/3, then 1333/2 later.
    [4, 2_000, 8, [0, 0, 667, 1333]],
    // 15 per 10 s window, 30 waiting: 2 at once, the other 13 evenly spread (10000/14 apart), all within the window.
    [15, 10_000, 30, [0, 0, ...Array.from({ length: 13 }, (_, i) => Math.round(((i + 1) * 10_000) / 14))]],
    // As many waiting as the budget, and no more arriving: no pacing, all at once.
    [5, 10_000, 5, [0, 0, 0, 0, 0], 0],
    // As many waiting as the budget, but 1 a second arriving: held for them, spread.
    [5, 10_000, 5, [0, 0, 2500, 5000, 7500], 0.001],
  ] as Array<[number, number, number, number[], number?]>)('%i calls per %i ms window, %i waiting from its start: released at the times the schedule names', (budget, windowMs, waiting, expected, rate = 0.01) => {
    let state: PaceState | undefined;
    let now = 0;
    let remaining = budget;
    let left = waiting;
    const times: number[] = [];
    while (remaining > 0) {
      const d = paceRelease(state, { now, remaining, windowEnd: windowMs, waiting: left, arrivalRate: rate, burst: PACE_BURST });
      if (!d.go) {
        now = d.at;
        continue;
      }
      state = d.state;
      times.push(Math.round(now));
      remaining--;
      left--;
    }
    expect(times).toEqual(expected);
    // The budget is used within its window, not carried over or left unused.
    expect(Math.max(...times)).toBeLessThan(windowMs);
  });
});

function learned(gate: string, limit: number, used: number, windowMs = 10_000): LearnedView {
  return { gate, limit, used, windowMs, source: '429', learnedAt: 0 };
}
function key(l: LearnedView[], extra: Partial<KeyInspection> = {}): KeyInspection {
  return { disabled: null, cooldownUntil: 0, cooldownReason: null, account: 'a', recovering: false, minuteCount: 0, dayCount: 0, learned: l, ...extra };
}

describe('budgetLeft: what the keys still allow in the window, each gate counted once', () => {
  const now = 12_000;
  test.each([
    ['two keys of one account share its limit: 5 − 2 left, not twice that', [key([learned('f:acc1', 5, 2)]), key([learned('f:acc1', 5, 2)])], { remaining: 3, capacity: 5, windowEnd: 20_000, windowMs: 10_000, sources: 1 }],
    ['three accounts: their rests add up', [key([learned('f:a1', 5, 5)]), key([learned('f:a2', 5, 1)]), key([learned('f:a3', 5, 0)])], { remaining: 9, capacity: 15, windowEnd: 20_000, windowMs: 10_000, sources: 2 }],
    ['a cooling or disabled key adds nothing', [key([learned('f:a1', 5, 0)], { cooldownUntil: now + 1 }), key([learned('f:a2', 5, 0)], { disabled: 'invalid_key' }), key([learned('f:a3', 5, 3)])], { remaining: 2, capacity: 5, windowEnd: 20_000, windowMs: 10_000, sources: 1 }],
    ["a key's tightest gate binds", [key([learned('k:1', 10, 0), learned('f:a1', 3, 1)])], { remaining: 2, capacity: 3, windowEnd: 20_000, windowMs: 10_000, sources: 1 }],
    ['a usable key without a learned limit: unknown, no pacing', [key([learned('f:a1', 5, 0)]), key([])], undefined],
    ['no usable key: the picks say when one recovers', [key([learned('f:a1', 5, 0)], { cooldownUntil: now + 5 })], undefined],
  ] as Array<[string, KeyInspection[], BudgetLeft | undefined]>)('%s', (_name, keys, expected) => {
    expect(budgetLeft(keys, now)).toEqual(expected);
  });
});

describe('soonestRelease: a lower bound from the place in its own line', () => {
  const b: BudgetLeft = { remaining: 3, windowEnd: 20_000, capacity: 15, windowMs: 10_000, sources: 3 };
  test.each([
    ['within what is left of this window: could go now', 2, 12_000],
    ['past it: not before the next window', 3, 20_000],
    ['past the next window too', 3 + 15, 30_000],
  ] as Array<[string, number, number]>)('%s', (_name, ahead, expected) => {
    expect(soonestRelease(b, ahead, 12_000)).toBe(expected);
  });
});


/** One window's budget and the served counts, as a store would keep them; pacing.ts decides. */
class FakePacer implements RoomPacer {
  state: PaceState | undefined;
  /** Times the room asked for a release, and the least served count it named the last time. */
  asks = 0;
  leasts: Array<number | undefined> = [];
  served_ = new Map<string, number>();
  constructor(public remaining: number, public windowEnd: number, readonly windowMs: number, readonly capacity = Math.max(remaining, 2)) {}
  async release(now: number, waiting: number, arrivalRate: number, least?: number, dueBy?: number): Promise<PaceVerdict> {
    this.asks++;
    this.leasts.push(least);
    const budget: BudgetLeft = { remaining: this.remaining, windowEnd: this.windowEnd, capacity: this.capacity, windowMs: this.windowMs, sources: 1 };
    const d = paceRelease(this.state, { now, remaining: this.remaining, windowEnd: this.windowEnd, waiting, arrivalRate, burst: PACE_BURST, dueBy });
    if (!d.go) return { go: false, at: d.at, budget };
    this.state = d.state;
    return { go: true, at: now, budget, spare: d.spare, lastCall: d.lastCall };
  }
  async served(): Promise<ServedView> {
    return { client: (c) => this.served_.get(c) ?? 0, user: (c, u) => this.served_.get(`${c}/${u}`) ?? 0 };
  }
  idle(): void {}
  async giveBack(): Promise<void> {}
  /** What the dispatcher does when a released request picks a key. */
  pick(r: WaitRoom, t: Ticket): void {
    this.remaining--;
    this.served_.set(t.client, (this.served_.get(t.client) ?? 0) + 1);
    this.served_.set(`${t.client}/${t.user}`, (this.served_.get(`${t.client}/${t.user}`) ?? 0) + 1);
    r.picked(t);
  }
}

describe('WaitRoom with a pacer: paced, least served first, bounded line, hopeless requests told at once', () => {
  function setup(remaining: number, windowMs: number, maxQueue = 100) {
    const clock = new FakeRoomClock(0);
    const pacer = new FakePacer(remaining, windowMs, windowMs);
    const room = new WaitRoom(maxQueue, clock, pacer);
    const log: Array<[string, number]> = [];
    // Every request woken picks a key at once.
    const join = (who: string, name: string, deadline = 60_000) =>
      room.join(who, deadline, undefined).then((t) => {
        log.push([name, Math.round(clock.t)]);
        pacer.pick(room, t);
      });
    return { clock, pacer, room, log, join };
  }

  test('8 waiting for a budget of 4 in a 2 s window: 2 at once, then one every remaining-time / remaining-budget', async () => {
    const { clock, log, join } = setup(4, 2_000);
    for (let i = 0; i < 8; i++) void join('h', `h${i}`).catch(() => {});
    await flush();
    await clock.advance(1_999);
    expect(log).toEqual([['h0', 0], ['h1', 0], ['h2', 667], ['h3', 1_333]]);
  });

  test('a last call: the waiting fit the budget, held back for arrivals still coming; each goes LAST_CALL_MS before its deadline, not expire beside it', async () => {
    // 10 in a 10 s window; 6 join at 0 (6 a second: 60 expected, contended): the burst, then 10000/9 apart.
    const { clock, log, join } = setup(10, 10_000);
    const ended: string[] = [];
    for (let i = 0; i < 6; i++) void join('h', `h${i}`, i < 2 ? 60_000 : 900).catch((e: WaitEnded) => ended.push(`h${i}:${e.why}`));
    await flush();
    await clock.advance(1_000);
    // h2..h5 would reach their deadline (900) before the next release (1111): each goes at 850.
    expect(log).toEqual([['h0', 0], ['h1', 0], ['h2', 900 - LAST_CALL_MS], ['h3', 900 - LAST_CALL_MS], ['h4', 900 - LAST_CALL_MS], ['h5', 900 - LAST_CALL_MS]]);
    expect(ended).toEqual([]);
  });

  test('no last call while more wait than the budget: each call is some waiting request\'s turn, and the schedule holds', async () => {
    // 4 in a 10 s window: after the burst, 2 left for 4 waiting (each its own client, so none is hopeless by its line).
    const { clock, log, join } = setup(4, 10_000);
    const ended: string[] = [];
    for (let i = 0; i < 6; i++) void join(`c${i}`, `c${i}`, i < 2 ? 60_000 : 900).catch((e: WaitEnded) => ended.push(`c${i}:${e.why}`));
    await flush();
    await clock.advance(1_000);
    expect(log).toEqual([['c0', 0], ['c1', 0]]);
    expect(ended).toEqual(['c2:deadline', 'c3:deadline', 'c4:deadline', 'c5:deadline']);
  });

  test('a light request arriving mid-window takes the next release: it was served least', async () => {
    const { clock, log, join } = setup(4, 2_000);
    for (let i = 0; i < 8; i++) void join('h', `h${i}`).catch(() => {});
    await flush();
    await clock.advance(200);
    void join('l', 'l0');
    await clock.advance(1_999);
    expect(log).toEqual([['h0', 0], ['h1', 0], ['l0', 667], ['h2', 1_333]]);
  });

  test('no contention: the waiting and those expected at the rate they came fit the budget, all go at once', async () => {
    // 3 joined in the last second: 6 more expected in the 2 s window; 3 + 6 fit in 10.
    const { clock, log, join } = setup(10, 2_000);
    for (let i = 0; i < 3; i++) void join('h', `h${i}`);
    await clock.advance(0);
    expect(log).toEqual([['h0', 0], ['h1', 0], ['h2', 0]]);
  });

  test('end users take turns within their client: six names of one client against one other client', async () => {
    const { clock, log, join } = setup(4, 2_000);
    // The six names are one client with six waiting: on a tie of served counts the other client,
    // with one waiting, goes first; then the two clients alternate, the six names as one.
    for (let i = 0; i < 6; i++) void join(`h|u:user-${i}`, `h${i}`).catch(() => {});
    void join('l', 'l0');
    await flush();
    await clock.advance(1_999);
    expect(log).toEqual([['l0', 0], ['h0', 0], ['h1', 667], ['h2', 1_333]]);
  });

  test('a full line: the client holding most of it gives up its newest, the newcomer of another client gets in', async () => {
    const { clock, room, join } = setup(0, 2_000, 3);
    const ended: string[] = [];
    for (let i = 0; i < 3; i++) void join('h', `h${i}`).catch((e: WaitEnded) => ended.push(`h${i}:${e.why}`));
    await flush();
    // The heavy client asking again is turned away: it already holds the line.
    await expect(join('h', 'h3')).rejects.toEqual(new WaitEnded('full'));
    void join('l', 'l0').catch((e: WaitEnded) => ended.push(`l0:${e.why}`));
    await flush();
    expect(ended).toEqual(['h2:full']);
    expect(room.busy).toBe(true);
    await clock.advance(0);
  });

  test('a request that cannot be released before its deadline is told at once, with when it could', async () => {
    const { clock, pacer, join } = setup(2, 2_000);
    // Two releases left in this window, at most 2 per later window (the fake's capacity): the 5th of one line cannot go before 4 s.
    pacer.remaining = 2;
    const ended: Array<[string, string, number | undefined, number]> = [];
    for (let i = 0; i < 6; i++) {
      void join('h', `h${i}`, 3_000).catch((e: WaitEnded) => ended.push([`h${i}`, e.why, e.at, clock.t]));
      await flush();
    }
    // h0, h1 went at once (burst); the budget is spent; h2..h5 wait: h2, h3 could go at 2 s, h4, h5 not before 4 s.
    expect(ended.map(([n, why, at, t]) => [n, why, at, t])).toEqual([
      ['h4', 'hopeless', 4_000, 0],
      ['h5', 'hopeless', 4_000, 0],
    ]);
  });

  test('requests ahead that expire sooner do not count against one: arrivals spread out are not told at once', async () => {
    const { clock, join } = setup(2, 2_000);
    const ended: string[] = [];
    // As above, but each arrived a little later than the one before: h4 and h5 could go at 2 s
    // once h2 and h3 (due sooner) have gone or expired, so nobody is hopeless at 0.
    for (let i = 0; i < 6; i++) {
      void join('h', `h${i}`, 2_500 + 100 * i).catch((e: WaitEnded) => ended.push(`h${i}:${e.why}`));
      await flush();
    }
    expect(ended).toEqual([]);
    expect(clock.t).toBe(0);
  });

  test('once the budget is known, arrivals are paced too: a request that found the room not busy queues when the pacing says wait', async () => {
    const { clock, room, join } = setup(2, 2_000);
    // No budget known yet: an arrival goes at once, without asking the pacer.
    expect(room.admit()).toBe(true);
    void join('h', 'h0');
    await flush();
    // The budget is known now (2 in the window, 1 used; demand of 3 in the last second expects more than it).
    expect(room.busy).toBe(false);
    expect(await room.admit()).toBe(true); // the second release of the window's burst
    expect(await room.admit()).toBe(false); // then paced: not before remaining-time / remaining-budget
    expect(clock.t).toBe(0);
  });

  /** 20 calls in a 10 s window, one request at 5 s: the pacer has been asked once, and its budget is known. */
  async function spareKnown() {
    const r = setup(20, 10_000);
    await r.clock.advance(5_000);
    void r.join('h', 'h0');
    await flush();
    expect(r.pacer.asks).toBe(1);
    return r;
  }

  test('demand below the budget: arrivals take the room\'s half of the spare calls without asking the pacer, then ask again', async () => {
    // Asked once: 20 left, 1 waiting, 5 expected in the 5 s left (1 in the last second) → 13 spare after it; half is the room's.
    const { pacer, room } = await spareKnown();
    for (let i = 0; i < 6; i++) expect(room.admit()).toBe(true);
    expect(pacer.asks).toBe(1);
    const asked = room.admit();
    expect(asked).toBeInstanceOf(Promise);
    expect(await asked).toBe(true);
    expect(pacer.asks).toBe(2);
  });

  test('before a release the room names the pacer its least served waiting client, for the other instances to compare', async () => {
    const { clock, pacer, join } = setup(0, 10_000);
    pacer.served_.set('h', 3).set('l', 1);
    void join('h', 'h0').catch(() => {});
    await flush();
    // Only h waits: its count is the least here.
    expect(pacer.leasts).toEqual([3]);
    void join('l', 'l0').catch(() => {});
    // The budget is spent until the window's end; the decision then, in the next window, names l, served once.
    pacer.remaining = 4;
    pacer.windowEnd = 20_000;
    await clock.advance(10_000);
    // Both wait: l's count (it goes, least served); then h alone again.
    expect(pacer.leasts).toEqual([3, 1, 3]);
  });

  test("spare calls are the window's: after its end, an arrival asks the pacer", async () => {
    const { clock, pacer, room } = await spareKnown();
    await clock.advance(10_000);
    const asked = room.admit();
    expect(asked).toBeInstanceOf(Promise);
    await asked;
    expect(pacer.asks).toBe(2);
  });
});
