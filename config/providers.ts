/** The six built-in providers. Providers are data: a seventh is `ORCHE_PROVIDERS=X` plus `PROVIDER_X_*`. */
export const BUILTIN_PROVIDERS: ReadonlyArray<{ id: string; name: string; model: string }> = [
  { id: 'GLM45', name: 'GLM-4.5', model: 'z-ai/glm-4.5' },
  { id: 'GPTOSS', name: 'GPT-OSS', model: 'openai/gpt-oss-120b' },
  { id: 'LLAMA3', name: 'Llama 4 Maverick', model: 'meta-llama/llama-4-maverick' },
  { id: 'KIMI', name: 'MoonshotAI Kimi', model: 'moonshotai/kimi-k2' },
  { id: 'QWEN3', name: 'Qwen3', model: 'qwen/qwen3-235b-a22b' },
  { id: 'FALCON', name: 'TNG DeepSeek', model: 'tngtech/deepseek-r1t2-chimera' },
];
