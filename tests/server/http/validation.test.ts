import fc from 'fast-check';
import { LIMITS, openaiChatSchema, validate, validateOpenAiChat } from '../../../server/http/validation';

const verdict = (f: () => unknown): string => {
  try {
    f();
    return 'ok';
  } catch (err) {
    return `${(err as Error).message}`;
  }
};

// validateOpenAiChat skips zod when the body is fine (issue 21): it must agree with the schema on every body.
test('validateOpenAiChat accepts and refuses exactly what openaiChatSchema does, with the same message', () => {
  const value = fc.oneof(fc.constant(undefined), fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 300 }), fc.array(fc.anything(), { maxLength: 3 }), fc.object());
  const model = fc.oneof(value, fc.constant(''), fc.string({ minLength: 1, maxLength: 10 }), fc.constant('x'.repeat(256)), fc.constant('x'.repeat(257)));
  const messages = fc.oneof(value, fc.constant([]), fc.array(fc.anything(), { minLength: 1, maxLength: 4 }), fc.constant(Array.from({ length: LIMITS.messages + 1 }, () => ({}))), fc.constant(Array.from({ length: LIMITS.messages }, () => ({}))));
  const body = fc.oneof(
    value,
    fc.record({ model, messages, stream: value }, { requiredKeys: [] }),
    fc.record({ model, messages, stream: fc.boolean(), temperature: fc.double() }, { requiredKeys: ['model', 'messages'] }),
  );
  fc.assert(
    fc.property(body, (b) => {
      expect(verdict(() => validateOpenAiChat(b))).toBe(verdict(() => validate(openaiChatSchema, b)));
    }),
    { numRuns: 3000 },
  );
});

test('a fine body comes back with the fields routing reads', () => {
  const body = { model: 'kimi', messages: [{ role: 'user', content: 'hi' }], stream: true, temperature: 0.2 };
  expect(validateOpenAiChat(body)).toMatchObject({ model: 'kimi', stream: true, temperature: 0.2 });
});
