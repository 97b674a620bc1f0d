/**
 * The wait room's pacer (providers/dispatch/roomPacer.ts) over a fair state whose other instances
 * are set by the test: a contended release goes to the instance whose waiting client was served
 * least, and a report gone stale holds no release for long. Pure: no timers, the time is an argument.
 */
import type { KeyPool, ProviderRuntime } from '../../../providers/keys/keyPool';
import { ProviderPacer } from '../../../providers/dispatch/roomPacer';
import { MemoryFairState, type PaceRead } from '../../../providers/store/fairState';
import type { KeyInspection } from '../../../providers/store/types';

/** One instance's fair state, with what the other instances report set by the test. */
class OthersFair extends MemoryFairState {
  othersLeast = Infinity;
  override async paceState(provider: string, waiting: number, now: number, arrivalRate: number): Promise<PaceRead> {
    return { ...(await super.paceState(provider, waiting, now, arrivalRate)), othersLeast: this.othersLeast };
  }
}

const NOW = 12_000;
/** One key whose account allows 5 calls per 10 s window, none used yet. */
const KEYS: KeyInspection[] = [
  { disabled: null, cooldownUntil: 0, cooldownReason: null, account: 'a', recovering: false, minuteCount: 0, dayCount: 0, learned: [{ gate: 'f:a', limit: 5, used: 0, windowMs: 10_000, source: '429', learnedAt: 0 }] },
];

function setup(keys = KEYS) {
  const fair = new OthersFair();
  const pool = { store: { inspect: async () => keys, fair } } as unknown as KeyPool;
  const provider = { config: { slug: 'glm45' }, views: new Map() } as unknown as ProviderRuntime;
  return { fair, pacer: new ProviderPacer(pool, () => provider, 10_000) };
}

describe('ProviderPacer: the least served client of every instance gets the release', () => {
  test('contended, a client served less waits on another instance: this one leaves it the release, three times at most', async () => {
    const { fair, pacer } = setup();
    fair.othersLeast = 1;
    // 30 waiting for 5 calls: contended. The least served here was served 3 times.
    const verdicts: Array<[boolean, number]> = [];
    for (let i = 0; i < 4; i++) {
      const v = await pacer.release(NOW + i, 30, 0.01, 3);
      verdicts.push([v.go, v.at - (NOW + i)]);
    }
    expect(verdicts).toEqual([
      [false, 25],
      [false, 25],
      [false, 25],
      // The other instance did not take it (its report is stale): this one does.
      [true, 0],
    ]);
  });

  test('contended, every other waiting client was served as much or more: the release is taken at once', async () => {
    const { fair, pacer } = setup();
    fair.othersLeast = 3;
    expect((await pacer.release(NOW, 30, 0.01, 3)).go).toBe(true);
    fair.othersLeast = Infinity;
    expect((await pacer.release(NOW, 30, 0.01, 3)).go).toBe(true);
  });

  test('not contended: nothing is left to another instance, there is enough for both', async () => {
    const { fair, pacer } = setup();
    fair.othersLeast = 0;
    const v = await pacer.release(NOW, 1, 0, 3);
    expect(v.go).toBe(true);
    expect(v.paced).toBe(false);
  });

  test('after it takes a release, the count of releases left in a row starts again', async () => {
    const { fair, pacer } = setup();
    fair.othersLeast = 1;
    for (let i = 0; i < 3; i++) expect((await pacer.release(NOW, 30, 0.01, 3)).go).toBe(false);
    // Three left in a row: the fourth is taken.
    expect((await pacer.release(NOW, 30, 0.01, 3)).go).toBe(true);
    // The next release (the burst's second) is left to the other instance again: the count started over.
    const next = await pacer.release(NOW + 5_000, 30, 0.01, 3);
    expect(next.go).toBe(false);
    expect(next.at).toBe(NOW + 5_000 + 25);
  });
});

describe("ProviderPacer: a window's burst reaches every account", () => {
  const account = (name: string): KeyInspection => ({ ...KEYS[0], account: name, learned: [{ ...KEYS[0].learned[0], gate: `f:${name}` }] });

  test('three accounts with room, contended: three releases at once at the window\'s start, then paced (none idles after its reset)', async () => {
    const { pacer } = setup([account('a1'), account('a2'), account('a3')]);
    const go: boolean[] = [];
    for (let i = 0; i < 4; i++) go.push((await pacer.release(NOW, 30, 0.01)).go);
    expect(go).toEqual([true, true, true, false]);
  });

  test('one account: the burst stays PACE_BURST (2)', async () => {
    const { pacer } = setup();
    const go: boolean[] = [];
    for (let i = 0; i < 3; i++) go.push((await pacer.release(NOW, 30, 0.01)).go);
    expect(go).toEqual([true, true, false]);
  });
});
