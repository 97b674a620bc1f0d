/**
 * The AI SDK (`ai` 7), unmodified, with OpenRouter's provider (`@openrouter/ai-sdk-provider`) and
 * OpenAI's (`@ai-sdk/openai`), against a real orche on loopback and the simulator. Both take
 * `baseURL: <orche>/v1`; model names are provider IDs. `@ai-sdk/openai` must use `.chat(id)`: its
 * default model speaks OpenAI's Responses API, which orche does not serve.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenRouter } from '@openrouter/ai-sdk-provider';
import { generateText, streamText } from 'ai';
import { startStack, type Stack } from './helpers/stack';

const IDS = ['GLM45', 'KIMI'];
const KEYS = IDS.map((id) => `sk-or-v1-aisdk-${id.toLowerCase()}-key-0001`);
const ENV: Record<string, string> = Object.fromEntries(IDS.map((id, i) => [`PROVIDER_${id}_API_KEY`, KEYS[i]]));
const KIMI = 'moonshotai/kimi-k2';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function twoStack(): Promise<Stack> {
  stack = await startStack(ENV, { keys: KEYS.map((key) => ({ key })) });
  return stack;
}

const openrouterAt = (s: Stack) => createOpenRouter({ baseURL: `${s.url}/v1`, apiKey: 'x' });
const openaiAt = (s: Stack) => createOpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x' });

describe('@openrouter/ai-sdk-provider', () => {
  test('generateText: the answer\'s text and token usage', async () => {
    const s = await twoStack();
    const r = await generateText({ model: openrouterAt(s)('kimi'), prompt: 'hi', maxRetries: 0 });
    expect(r.text).toBe(`Hello from ${KIMI} (sim #1)`);
    expect(r.usage.totalTokens).toBeGreaterThan(0);
    expect(r.finishReason).toBe('stop');
    expect(s.sim.calls[0].body).toMatchObject({ model: KIMI, messages: [{ role: 'user', content: 'hi' }] });
  });

  test('streamText: the text deltas add up; usage arrives at the end', async () => {
    const s = await twoStack();
    const r = streamText({ model: openrouterAt(s)('kimi'), prompt: 'hi', maxRetries: 0 });
    let text = '';
    for await (const delta of r.textStream) text += delta;
    expect(text).toBe(`Hello from ${KIMI} (sim #1)`);
    expect((await r.usage).totalTokens).toBeGreaterThan(0);
    expect(s.sim.calls[0].body).toMatchObject({ model: KIMI, stream: true });
  });
});

describe('@ai-sdk/openai (chat completions)', () => {
  test('generateText and streamText through .chat(id)', async () => {
    const s = await twoStack();
    const openai = openaiAt(s);
    const r = await generateText({ model: openai.chat('kimi'), prompt: 'hi', maxRetries: 0 });
    expect(r.text).toBe(`Hello from ${KIMI} (sim #1)`);
    const st = streamText({ model: openai.chat('kimi'), prompt: 'hi', maxRetries: 0 });
    let text = '';
    for await (const delta of st.textStream) text += delta;
    expect(text).toBe(`Hello from ${KIMI} (sim #2)`);
    expect((await st.usage).totalTokens).toBeGreaterThan(0);
  });
});
