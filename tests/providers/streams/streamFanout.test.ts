/**
 * What a fan-out leg reads from each chunk (providers/streams/streamFanout.ts) and from a JSON answer
 * (providers/dispatch/chat.ts contentOf), on real OpenRouter chunks.
 */
import { contentOf } from '../../../providers/dispatch/chat';
import { deltaParts } from '../../../providers/streams/streamFanout';

// z-ai/glm-4.5 via DeepInfra, stream gen-1759420128-LjBsuYJf6lKeyy66nQs9 (created 1759420128, 2025-10-02),
// as kept in a public test server of an OpenRouter client (the repository is not named by the code
// corpus that holds it): a reasoning delta, then a content delta of the same stream.
const GLM_REASONING = '{"id":"gen-1759420128-LjBsuYJf6lKeyy66nQs9","provider":"DeepInfra","model":"z-ai/glm-4.5","object":"chat.completion.chunk","created":1759420128,"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Okay","reasoning_details":[{"type":"reasoning.text","text":"Okay","format":"unknown","index":0}]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}';
const GLM_CONTENT = '{"id":"gen-1759420128-LjBsuYJf6lKeyy66nQs9","provider":"DeepInfra","model":"z-ai/glm-4.5","object":"chat.completion.chunk","created":1759420128,"choices":[{"index":0,"delta":{"role":"assistant","content":" is","reasoning":null,"reasoning_details":[]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}';
const GLM_FINISH = '{"id":"gen-1759420128-LjBsuYJf6lKeyy66nQs9","provider":"DeepInfra","model":"z-ai/glm-4.5","object":"chat.completion.chunk","created":1759420128,"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":null,"reasoning_details":[]},"finish_reason":"stop","native_finish_reason":"stop","logprobs":null}]}';
// deepseek/deepseek-v4-pro-0813 via StreamLake, stream gen-1790156376-H3hQlnMSJkVWkGJ4ROxR (2026-09-23),
// "first SSE payloads verbatim" of a published probe of OpenRouter's reasoning and tool calling.
const TOOL_FIRST = '{"id":"gen-1790156376-H3hQlnMSJkVWkGJ4ROxR","object":"chat.completion.chunk","created":1790156376,"model":"deepseek/deepseek-v4-pro-0813","provider":"StreamLake","choices":[{"index":0,"delta":{"content":null,"role":"assistant","tool_calls":[{"index":0,"id":"call_mbt9nrmhk77jq3wty3d2a3o3","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null,"native_finish_reason":null}]}';
const TOOL_ARGS = '{"id":"gen-1790156376-H3hQlnMSJkVWkGJ4ROxR","object":"chat.completion.chunk","created":1790156376,"model":"deepseek/deepseek-v4-pro-0813","provider":"StreamLake","choices":[{"index":0,"delta":{"content":null,"role":"assistant","tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": \\""}}]},"finish_reason":null,"native_finish_reason":null}]}';

test('a reasoning delta gives reasoning, a content delta content; reasoning:null and reasoning_details:[] give nothing', () => {
  expect(deltaParts(JSON.parse(GLM_REASONING))).toEqual({ content: '', reasoning: 'Okay', toolCalls: [], finishReason: null });
  expect(deltaParts(JSON.parse(GLM_CONTENT))).toEqual({ content: ' is', reasoning: '', toolCalls: [], finishReason: null });
  expect(deltaParts(JSON.parse(GLM_FINISH))).toEqual({ content: '', reasoning: '', toolCalls: [], finishReason: 'stop' });
});

test('tool-call deltas: the first names the call, the next carry arguments; content null is no content', () => {
  expect(deltaParts(JSON.parse(TOOL_FIRST))).toEqual({ content: '', reasoning: '', finishReason: null, toolCalls: [{ index: 0, id: 'call_mbt9nrmhk77jq3wty3d2a3o3', name: 'get_weather', arguments: '' }] });
  expect(deltaParts(JSON.parse(TOOL_ARGS)).toolCalls).toEqual([{ index: 0, id: null, name: null, arguments: '{"city": "' }]);
});

test('the usage chunk (choices []) and odd chunks give nothing and never throw', () => {
  expect(deltaParts({ choices: [], usage: { total_tokens: 3 } })).toEqual({ content: '', reasoning: '', toolCalls: [], finishReason: null });
  expect(deltaParts(undefined)).toEqual({ content: '', reasoning: '', toolCalls: [], finishReason: null });
  expect(deltaParts({ choices: [{ delta: { tool_calls: [null, 7, { function: { arguments: 5 } }] } }] } as never).toolCalls).toEqual([{ index: 2, id: null, name: null, arguments: '' }]);
  // Not an OpenRouter sample: the fallback's own case, a delta that fills only reasoning_details.
  expect(deltaParts({ choices: [{ delta: { reasoning_details: [{ type: 'reasoning.text', text: 'a' }, { type: 'reasoning.encrypted', data: 'x' }, { type: 'reasoning.summary', summary: 'b' }] } }] }).reasoning).toBe('ab');
});

test('contentOf: a JSON answer\'s reasoning, reasoning_details and tool_calls, or null', () => {
  const reasoning = 'I need to calculate 15 * 23 step by step.';
  const answer = { choices: [{ finish_reason: 'stop', message: { role: 'assistant', content: 'x', refusal: null, reasoning, reasoning_details: [{ type: 'reasoning.text', text: reasoning, format: 'unknown', index: 0 }] } }], usage: { cost: 0.1 } };
  expect(contentOf(answer)).toMatchObject({ content: 'x', reasoning, reasoningDetails: [{ text: reasoning }], toolCalls: null, finishReason: 'stop', usage: { cost: 0.1 } });
  expect(contentOf({ choices: [{ message: { content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] } }] })).toMatchObject({ content: '', reasoning: null, reasoningDetails: null, toolCalls: [{ id: 'c' }] });
  expect(contentOf({ choices: [{ message: { content: 'y', reasoning: '', reasoning_details: [] } }] })).toMatchObject({ reasoning: null, reasoningDetails: null });
  expect(contentOf(null)).toMatchObject({ content: '', reasoning: null, toolCalls: null, usage: null });
});
