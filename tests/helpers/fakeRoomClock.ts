/** A wait room's clock and timers, faked: time moves only by `advance`, firing due timers in time order. */
import type { RoomClock } from '../../providers/dispatch/waitRoom';

/** Lets promise chains started by a timer settle (a few turns of the event loop). */
export const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
};

export class FakeRoomClock implements RoomClock {
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];
  constructor(public t = 0) {}
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
  /** The timers armed, as delays from now. */
  pending(): number[] {
    return this.timers.filter((x) => !x.cancelled).map((x) => x.at - this.t);
  }
}
