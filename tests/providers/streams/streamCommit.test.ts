/**
 * isCommitting(chunk): the first chunk that gives the client something commits the stream (docs/design.md#streaming).
 * Chunk forms as docs/design.md#streaming (Streaming) and docs/design.md#streaming give them.
 */
import { isCommitting } from '../../../providers/streams/streamCommit';

const head = { id: 'gen-1', object: 'chat.completion.chunk', created: 1764500000, model: 'moonshotai/kimi-k2', provider: 'SimProvider' };
const choice = (delta: unknown, extra: Record<string, unknown> = {}) => ({ ...head, choices: [{ index: 0, delta, finish_reason: null, ...extra }] });

test.each([
  ['the empty role delta real streams open with', choice({ role: 'assistant', content: '' }), false],
  ['a delta with null content and no role', choice({ content: null }), false],
  ['empty reasoning fields', choice({ role: 'assistant', content: '', reasoning: null, reasoning_details: [] }), false],
  ['a chunk with empty choices and no usage', { ...head, choices: [] }, false],
  ['content', choice({ role: 'assistant', content: 'Hel' }), true],
  ['reasoning text (shown to the client)', choice({ role: 'assistant', content: '', reasoning: 'Let me' }), true],
  ['tool calls', choice({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }] }), true],
  ['a finish_reason', choice({ content: '' }, { finish_reason: 'stop' }), true],
  ['finish_reason "error" without an error object', choice({ content: '' }, { finish_reason: 'error', native_finish_reason: 'error' }), true],
  ['a top-level error (OpenRouter\'s mid-stream error chunk)', { ...head, error: { code: 429, message: 'Rate limit exceeded' }, choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }] }, true],
  ['the usage chunk (empty choices)', { ...head, choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }, true],
  ['something that is not a JSON object', 'not json', true],
])('%s → %s', (_name, chunk, expected) => {
  expect(isCommitting(chunk)).toBe(expected);
});
