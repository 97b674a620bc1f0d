import { maskSecrets, REDACTED, SecretMasker } from '../../../providers/upstream/mask';
import { capRelayed, capRelayedValue, MAX_RELAYED_CHARS } from '../../../providers/upstream/relayed';

const KEY = 'sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab';
const PLAIN = 'plainSecretValue42';

describe('maskSecrets', () => {
  test.each([
    ['an OpenRouter key', `bad key ${KEY}.`, `bad key ${REDACTED}.`],
    ['another sk- key', 'key sk-ant-api03-AbCdEf0123456789xyz here', `key ${REDACTED} here`],
    ['a Bearer credential', 'Authorization: Bearer abcdef.123456.XYZ_9', `Authorization: Bearer ${REDACTED}`],
    ['prose about Bearer tokens is left alone', 'Send a Bearer token in the header', 'Send a Bearer token in the header'],
    ["the attempt's key, whatever its shape", `echo ${PLAIN}!`, `echo ${REDACTED}!`],
    ['text without secrets', 'The model is overloaded (sk-short)', 'The model is overloaded (sk-short)'],
  ])('%s', (_name, input, expected) => {
    expect(maskSecrets(input, [PLAIN])).toBe(expected);
  });

  test('inside JSON the replacement keeps the document valid', () => {
    const body = JSON.stringify({ error: { message: `Bearer ${KEY}`, metadata: { raw: KEY } } });
    expect(JSON.parse(maskSecrets(body))).toEqual({ error: { message: `Bearer ${REDACTED}`, metadata: { raw: REDACTED } } });
  });

  const esc = (t: string) => [...t].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  test.each([
    ['a key written as JSON escapes', `"${esc(KEY)}"`, `"${REDACTED}"`],
    ['only its first character escaped', `"\\u0073${KEY.slice(1)}"`, `"${REDACTED}"`],
    ["the attempt's key, escaped", `"Bearer\\u0020${esc(PLAIN)}"`, `"Bearer ${REDACTED}"`],
    ['an escaped backslash before u0073 is text, not an escape', `"\\\\u0073${KEY.slice(1)}"`, `"\\\\u0073${KEY.slice(1)}"`],
    ['escapes of characters that need them stay', '"a\\u0022b\\u000a\\u00e9"', '"a\\u0022b\\u000a\\u00e9"'],
  ])('JSON escapes: %s', (_name, input, expected) => {
    const out = maskSecrets(input, [PLAIN]);
    expect(out).toBe(expected);
    expect(JSON.stringify(JSON.parse(out))).not.toMatch(/sk-or-v1-0123|plainSecret/);
  });

  test('capRelayed caps at 500 characters and does nothing else (the text was masked where it entered)', () => {
    expect(capRelayed('a'.repeat(10_000))).toHaveLength(MAX_RELAYED_CHARS);
    expect(capRelayed('short')).toBe('short');
    expect(capRelayed('Bearer [REDACTED] said no')).toBe('Bearer [REDACTED] said no');
  });

  test('capRelayedValue caps every string and bounds depth and width', () => {
    expect(capRelayedValue({ raw: 'r'.repeat(600), n: 3, deep: { a: { b: { c: { d: 'gone' } } } } })).toEqual({ raw: `${'r'.repeat(499)}…`, n: 3, deep: { a: { b: { c: undefined } } } });
    expect((capRelayedValue(Array.from({ length: 50 }, (_, i) => i)) as unknown[]).length).toBe(20);
  });
});

describe('SecretMasker (a text in pieces)', () => {
  const run = (pieces: string[], keys: string[] = []) => {
    const m = new SecretMasker(keys);
    return pieces.map((p) => m.push(p)).join('') + m.end();
  };

  test('a key cut at every position between two pieces is masked, and nothing else changes', () => {
    const text = `data: {"content":"hello Bearer ${KEY} and ${PLAIN} bye"}\n\n`;
    const whole = maskSecrets(text, [PLAIN]);
    for (let cut = 1; cut < text.length; cut++) {
      const out = run([text.slice(0, cut), text.slice(cut)], [PLAIN]);
      expect([cut, out]).toEqual([cut, whole]);
    }
  });

  test('a key spelled with JSON escapes, cut at every position (inside an escape too), is masked', () => {
    const text = `data: {"content":"hello Bearer \\u0073${KEY.slice(1, 20)}\\u0061${KEY.slice(21)} bye"}\n\n`;
    const whole = maskSecrets(text);
    expect(whole).toBe(`data: {"content":"hello Bearer ${REDACTED} bye"}\n\n`);
    for (let cut = 1; cut < text.length; cut++) expect([cut, run([text.slice(0, cut), text.slice(cut)])]).toEqual([cut, whole]);
  });

  test('a key cut into single characters is masked', () => {
    expect(run(`x ${KEY} y`.split(''))).toBe(`x ${REDACTED} y`);
  });

  test('a token run longer than the hold bound is released, and a key at its end stays masked across the release', () => {
    const long = 'a'.repeat(70 * 1024);
    const out = run([`${long} ${KEY.slice(0, 40)}`, `${'b'.repeat(70 * 1024)}`, `${KEY.slice(40)} end`]);
    expect(out).not.toContain(KEY.slice(40));
    expect(out).not.toContain(KEY.slice(9, 40));
    expect(out.endsWith(' end')).toBe(true);
  });
});
