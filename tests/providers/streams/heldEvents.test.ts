import { HeldEvents } from '../../../providers/streams/heldEvents';

const comment = (n: number) => ({ raw: `:${'x'.repeat(n - 3)}\n\n` });
const data = (n: number) => ({ raw: `data: ${'y'.repeat(n - 8)}\n\n`, data: 'y'.repeat(n - 8) });

test.each([
  ['comments within the bound are held', [comment(40), comment(40)], [true, true], 2, 0],
  ['a comment past the bound is dropped and counted; reading goes on', [comment(60), comment(60), comment(10)], [true, true, true], 2, 1],
  ['a data event past the bound is not held: the caller commits', [comment(90), data(20)], [true, false], 1, 0],
])('%s', (_name, events, answers, held, dropped) => {
  const h = new HeldEvents(100);
  expect(events.map((e) => h.hold(e))).toEqual(answers);
  expect([h.events.length, h.dropped]).toEqual([held, dropped]);
  expect(h.chars).toBeLessThanOrEqual(100);
});

test('the committing event is always kept, after what was held', () => {
  const h = new HeldEvents(10);
  h.hold(comment(8));
  const big = data(50);
  expect(h.commit(big)).toEqual([comment(8), big]);
});
