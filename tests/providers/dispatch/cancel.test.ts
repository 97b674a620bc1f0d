/** ClientGone behaves as the AbortSignal it stands in for does, for what orche reads of one. */
import { ClientGone, signalOf } from '../../../providers/dispatch/cancel';

test('abort runs each listener once, in order; a removed one and one added after the abort never run', () => {
  const gone = new ClientGone();
  const ran: string[] = [];
  const removed = () => ran.push('removed');
  gone.addEventListener('abort', () => ran.push('first'), { once: true });
  gone.addEventListener('abort', removed);
  gone.addEventListener('abort', () => ran.push('second'));
  gone.removeEventListener('abort', removed);
  expect(gone.aborted).toBe(false);
  gone.abort();
  gone.abort();
  gone.addEventListener('abort', () => ran.push('late'));
  expect(gone.aborted).toBe(true);
  expect(ran).toEqual(['first', 'second']);
});

test('the real signal, made before the abort, follows it; made after, it is born aborted', () => {
  const early = new ClientGone();
  const signal = signalOf(early);
  let fired = 0;
  signal.addEventListener('abort', () => fired++);
  expect(signal.aborted).toBe(false);
  early.abort();
  expect(signal.aborted).toBe(true);
  expect(fired).toBe(1);
  expect(signalOf(early)).toBe(signal);

  const late = new ClientGone();
  late.abort();
  expect(signalOf(late).aborted).toBe(true);
  // AbortSignal.any, which takes only real signals, sees it.
  expect(AbortSignal.any([signalOf(late)]).aborted).toBe(true);
});

test('an AbortSignal passes through signalOf as it is', () => {
  const ac = new AbortController();
  expect(signalOf(ac.signal)).toBe(ac.signal);
});
