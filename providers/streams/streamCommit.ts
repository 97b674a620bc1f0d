/**
 * When a stream stops being ours to retry (docs/design.md#streaming): at its first chunk that gives the client
 * something — content, reasoning, tool calls, a finish_reason, usage — or that carries an error.
 * Real streams open with an empty `{"role":"assistant","content":""}` delta and keep-alive comments;
 * until the first committing chunk the client has seen nothing, so an error there still rotates.
 */

function nonEmpty(v: unknown): boolean {
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  return v !== undefined && v !== null;
}

/**
 * `chunk` is a parsed `data:` payload; anything that is not a JSON object (`[DONE]`, text) commits,
 * since orche cannot tell it is empty.
 */
export function isCommitting(chunk: unknown): boolean {
  if (!chunk || typeof chunk !== 'object' || Array.isArray(chunk)) return true;
  const c = chunk as { error?: unknown; usage?: unknown; choices?: unknown };
  if (c.error !== undefined && c.error !== null) return true;
  if (c.usage !== undefined && c.usage !== null) return true;
  if (!Array.isArray(c.choices)) return true;
  for (const choice of c.choices) {
    if (!choice || typeof choice !== 'object') return true;
    const { delta, finish_reason, native_finish_reason, error } = choice as Record<string, unknown>;
    if (nonEmpty(finish_reason) || nonEmpty(native_finish_reason) || nonEmpty(error)) return true;
    if (delta === undefined || delta === null) continue;
    if (typeof delta !== 'object') return true;
    for (const [field, value] of Object.entries(delta as Record<string, unknown>)) {
      if (field === 'role') continue;
      if (nonEmpty(value)) return true;
    }
  }
  return false;
}
