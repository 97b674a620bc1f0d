/** Why the rotation left a request's key, and the rotation a pick announces: a table, pure. */
import { type LeftKey, leftAfterCall, leftForFallBack, rotationTo } from '../../../providers/dispatch/rotationReason';
import { outcome, T0 } from '../../helpers/poolFixtures';

const left = (keyId: string, reason: string): LeftKey => ({ keyId, reason });

describe('rotationTo: a pick took a key', () => {
  test.each<[string, LeftKey | null, string, unknown]>([
    ['the first pick of the request → no rotation', null, 'a', null],
    ['another key after a 429 of a → a rotation from a, for the 429', left('a', 'rate_limited'), 'b', { from: 'a', to: 'b', reason: 'rate_limited' }],
    ['the same key again (it recovered, or it is the only one) → no rotation', left('a', 'rate_limited'), 'a', null],
  ])('%s', (_name, before, keyId, expected) => {
    expect(rotationTo(before, keyId)).toEqual(expected);
  });
});

describe('leftAfterCall: a call ended', () => {
  test.each<[string, LeftKey | null, Parameters<typeof leftAfterCall>[2], LeftKey | null]>([
    ['a 429 → left for its reason', null, outcome.cool('key', T0 + 1_000), left('a', 'rate_limited')],
    ['a 5xx → left for it, replacing an older reason', left('b', 'rate_limited'), outcome.retry(502), left('a', 'upstream_502')],
    ['a 401 → left for it', null, outcome.disable(), left('a', 'invalid_key')],
    ['a success → what was left before stays', left('b', 'rate_limited'), outcome.success(), left('b', 'rate_limited')],
  ])('%s', (_name, before, o, expected) => {
    expect(leftAfterCall(before, 'a', o)).toEqual(expected);
  });
});

describe('leftForFallBack: the request goes on with another provider', () => {
  test.each<[string, LeftKey | null, string | null, LeftKey | null]>([
    ['right after a call of a → left for the fallback', left('a', 'upstream_rate_limited'), 'a', left('a', 'fallback:upstream_rate_limited')],
    ['without a call (no usable key) → the reason stays', left('a', 'rate_limited'), null, left('a', 'rate_limited')],
    ['without a call and nothing left → nothing', null, null, null],
  ])('%s', (_name, before, keyId, expected) => {
    expect(leftForFallBack(before, keyId, 'fallback:upstream_rate_limited')).toEqual(expected);
  });
});
