/**
 * What a snapshot file's state may hold, entry by entry (docs/design.md#snapshot-healing: a snapshot heals). A file is
 * data from disk, written by this orche, an older one, an editor or a failing disk: each entry is
 * checked before it is loaded, and one that is malformed is dropped by name while the rest loads.
 * Before this, one `null` gate stopped orche at start, and a non-numeric round-robin position made
 * every request to its provider a 500.
 */
import type { LearnedLimit, LearnedSet } from '../limits/learnedLimit';
import type { MemoryState } from './memory';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A time a Date can hold (±8.64e15 ms): a larger one would make every route that shows it throw. */
export const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= 8.64e15;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** A value as saved: stamped `{value, at}`, or bare (a snapshot written before values carried their time). */
const stampedOf = (ok: (v: unknown) => boolean) => (v: unknown) =>
  isRecord(v) && 'at' in v && 'value' in v ? isTime(v.at) && ok(v.value) : ok(v);

/** A gate as this orche writes it, or as one written before the trial call had its name (`probing`). */
function isGate(v: unknown): boolean {
  if (!isRecord(v) || !isTime(v.until) || typeof v.reason !== 'string') return false;
  if ('probing' in v && !('recovering' in v)) return typeof v.probing === 'boolean';
  return typeof v.recovering === 'boolean' && (v.trialUntil === undefined || isTime(v.trialUntil));
}

const isCounter = (v: unknown) => isRecord(v) && isTime(v.window) && Number.isInteger(v.window) && isCount(v.count);

function isLearned(v: unknown): boolean {
  const l = v as Partial<LearnedLimit>;
  return isRecord(v) && isCount(l.limit) && l.limit! > 0 && isTime(l.windowMs) && l.windowMs! > 0 && isTime(l.learnedAt) && typeof l.source === 'string';
}
const isLearnedSet = (v: unknown) => isRecord(v) && Object.values(v).every(isLearned);

/** Each part of the state and what one of its entries must be; `learned` may be absent (older files). */
const PARTS: Record<keyof MemoryState, { entry: (v: unknown) => boolean; optional?: true }> = {
  gates: { entry: isGate },
  disabled: { entry: stampedOf((x) => typeof x === 'string' || x === null) },
  strikes: { entry: stampedOf(isCount) },
  aliases: { entry: stampedOf((x) => typeof x === 'string') },
  counters: { entry: isCounter },
  positions: { entry: stampedOf(isCount) },
  learned: { entry: isLearnedSet, optional: true },
};

/** An entry's name for the warning: its path in the file, the key quoted and cut (it is data from disk). */
export function entryName(part: string, key?: string): string {
  if (key === undefined) return part;
  return `${part}[${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)}]`;
}

/**
 * The state's well-formed entries, and the names of those dropped (`state.gates["k:x"]`, or a whole
 * part such as `state.counters` when it is not an object). A missing part is empty, not an error.
 */
export function healState(state: Record<string, unknown>): { state: MemoryState; dropped: string[] } {
  const dropped: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [part, rule] of Object.entries(PARTS)) {
    const raw = state[part];
    if (raw === undefined && rule.optional) continue;
    if (!isRecord(raw)) {
      dropped.push(entryName(`state.${part}`));
      out[part] = {};
      continue;
    }
    // Object.fromEntries defines each key as an own property: a "__proto__" entry stays data.
    out[part] = Object.fromEntries(
      Object.entries(raw).filter(([key, v]) => {
        if (rule.entry(v)) return true;
        dropped.push(entryName(`state.${part}`, key));
        return false;
      }),
    );
  }
  return { state: out as unknown as MemoryState & { learned?: Record<string, LearnedSet> }, dropped };
}
