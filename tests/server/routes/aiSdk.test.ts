/**
 * The AI SDK (`ai` 7), unmodified, with OpenRouter's provider (`@openrouter/ai-sdk-provider`) and
 * OpenAI's (`@ai-sdk/openai`), against a real orche on loopback and the simulator. Both take
 * `baseURL: <orche>/v1`; model names are provider IDs. `@ai-sdk/openai` must use `.chat(id)`: its
 * default model speaks OpenAI's Responses API, which orche does not serve.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { createOpenRouter } from '@openrouter/ai-sdk-provider';
import { generateText, streamText } from 'ai';
import { startStack, type Stack } from '../../helpers/stack';

const IDS = ['GLM45', 'KIMI'];
const KEYS = IDS.map((id) => `sk-or-v1-aisdk-${id.toLowerCase()}-key-0001`);
const ENV: Record<string, string> = Object.fromEntries(IDS.map((id, i) => [`PROVIDER_${id}_API_KEY`, KEYS[i]]));
const KIMI = 'moonshotai/kimi-k2';
const GLM = 'z-ai/glm-4.5';
/** The simulator's reasoning for GLM-4.5, a reasoning model (scripts/simulator/responses.ts). */
const glmReasoning = (seq: number) => `Okay, the user greets ${GLM}. A short, friendly answer will do (sim #${seq}).`;

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

describe('@openrouter/ai-sdk-provider with a reasoning model', () => {
  test('generateText: the reasoning is its reasoning part, apart from the text; usage.cost in its provider metadata', async () => {
    const s = await twoStack();
    const r = await generateText({ model: openrouterAt(s)('glm45'), prompt: 'hi', maxRetries: 0 });
    expect(r.text).toBe(`Hello from ${GLM} (sim #1)`);
    expect(r.reasoningText).toBe(glmReasoning(1));
    expect(r.reasoning).toEqual([expect.objectContaining({ type: 'reasoning', text: glmReasoning(1) })]);
    const cost = (r.providerMetadata?.openrouter?.usage as { cost?: number } | undefined)?.cost;
    expect(cost).toBeGreaterThan(0);
    // The same cost is what orche recorded for the key that served it.
    const glm = (await s.http.get('/api/usage?provider=glm45')).body.providers[0];
    expect(glm.day.cost_usd).toBeCloseTo(cost!, 12);
  });

  test('streamText: reasoning deltas arrive as reasoning parts, all before the first text delta', async () => {
    const s = await twoStack();
    const r = streamText({ model: openrouterAt(s)('glm45'), prompt: 'hi', maxRetries: 0 });
    const parts: Array<{ type: string; text?: string }> = [];
    for await (const part of r.fullStream) parts.push(part as { type: string; text?: string });
    const types = parts.map((p) => p.type);
    const reasoning = parts.filter((p) => p.type === 'reasoning-delta');
    expect(reasoning.length).toBeGreaterThan(1);
    expect(reasoning.map((p) => p.text).join('')).toBe(glmReasoning(1));
    expect(types.lastIndexOf('reasoning-delta')).toBeLessThan(types.indexOf('text-delta'));
    expect(await r.text).toBe(`Hello from ${GLM} (sim #1)`);
    expect(await r.reasoningText).toBe(glmReasoning(1));
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

  test('a reasoning model: the text is intact (OpenAI\'s provider has no field for OpenRouter\'s reasoning and leaves it out)', async () => {
    const s = await twoStack();
    const r = await generateText({ model: openaiAt(s).chat('glm45'), prompt: 'hi', maxRetries: 0 });
    expect(r.text).toBe(`Hello from ${GLM} (sim #1)`);
    expect(r.reasoningText).toBeUndefined();
  });
});
