/**
 * The names of gates and counters, written once: every store uses them, so that a snapshot or a Redis
 * key means the same thing, and the Lua scripts get them written in from here (`LUA_NAMES`).
 */
import type { CoolScope } from '../limits/rateLimit';

/** Gate names: a kind, then the key id, account, account|model or model it holds. */
export const gate = {
  key: (keyId: string) => `k:${keyId}`,
  account: (account: string) => `a:${account}`,
  accountFree: (account: string) => `f:${account}`,
  accountModel: (account: string, model: string) => `m:${account}|${model}`,
  model: (model: string) => `c:${model}`,
  /** The edge hold of this host: one gate for every provider (docs/design.md#the-outcome-table). */
  host: 'h:edge',
};

/** The gate each cooling or learning scope names (`account` already resolved). */
const SCOPE_GATES: Record<CoolScope, (keyId: string, account: string, model: string) => string> = {
  key: (keyId) => gate.key(keyId),
  account: (_keyId, account) => gate.account(account),
  account_free: (_keyId, account) => gate.accountFree(account),
  account_model: (_keyId, account, model) => gate.accountModel(account, model),
};

export function scopeGate(scope: CoolScope, keyId: string, account: string, model: string): string {
  return SCOPE_GATES[scope](keyId, account, model);
}

/** Stands for an argument while a name function is turned into Lua or read back (never part of a real name). */
const MARK = '\u0000';

/** The scope whose gate this is (the key-status view names a learned limit by it); undefined for a model or host gate. */
export function scopeOfGate(name: string): CoolScope | undefined {
  for (const [scope, named] of Object.entries(SCOPE_GATES) as Array<[CoolScope, (typeof SCOPE_GATES)[CoolScope]]>) {
    if (name.startsWith(named(MARK, MARK, MARK).split(MARK)[0])) return scope;
  }
  return undefined;
}

/** The gates that hold one key for one model, `account` already resolved. */
export function keyGates(keyId: string, account: string, model: string, free: boolean): string[] {
  const gates = [gate.key(keyId), gate.account(account), gate.accountModel(account, model)];
  if (free) gates.push(gate.accountFree(account));
  return gates;
}

/** Budget counter names (the window is kept beside them). */
export const counterKey = {
  keyMinute: (keyId: string, model: string) => `km:${keyId}|${model}`,
  keyDay: (keyId: string, model: string) => `kd:${keyId}|${model}`,
  accountMinute: (account: string) => `am:${account}`,
  accountDay: (account: string) => `ad:${account}`,
};

const LEARNED_COUNTER = 'l:';

/** Counter name of a learned limit's window, beside the budget counters. */
export function learnedCounter(gateName: string, windowMs: number | string): string {
  return `${LEARNED_COUNTER}${gateName}|${windowMs}`;
}

/** The window length of a learned limit's counter name; undefined for any other counter. */
export function learnedCounterWindow(name: string): number | undefined {
  if (!name.startsWith(LEARNED_COUNTER)) return undefined;
  const w = Number(name.slice(name.lastIndexOf('|') + 1));
  return Number.isFinite(w) && w > 0 ? w : undefined;
}

/**
 * A name function as a Lua expression of the same arguments, by calling it with marks in their
 * place: the Lua builds exactly the names the TypeScript builds. `args` are the Lua expressions.
 */
function luaName(fn: (...args: string[]) => string, args: string[]): string {
  const parts = fn(...args.map((a) => `${MARK}${a}${MARK}`)).split(MARK);
  for (let i = 0; i < parts.length; i += 2) {
    if (/['\\\n]/.test(parts[i])) throw new Error(`a name's literal text cannot go into Lua as is: ${parts[i]}`);
  }
  return parts.map((p, i) => (i % 2 === 1 ? p : p === '' ? '' : `'${p}'`)).filter((p) => p !== '').join(' .. ');
}

const luaFunction = (name: string, fn: (...args: string[]) => string, params: string[], args = params) =>
  `local function ${name}(${params.join(', ')}) return ${luaName(fn, args)} end`;

/**
 * What every Redis name starts with after the prefix P: the kind of state it holds
 * (docs/design.md#what-is-shared-through-redis-and-what-is-per-instance). Written into the Lua too (`LUA_NAMES`).
 */
export const REDIS_KIND = {
  gate: 'g:',
  strikes: 's:',
  disabled: 'd:',
  account: 'al:',
  learned: 'l:',
  counter: 'n:',
  pick: 'pk:',
  position: 'pos:',
  pace: 'pz:',
  served: 'sv:',
  clientLimit: 'client-rl:',
  userLimit: 'user-rl:',
} as const;

const luaKinds = () => {
  const kinds = Object.entries(REDIS_KIND);
  return `local ${kinds.map(([k]) => `${k.toUpperCase()}_KIND`).join(', ')} = ${kinds.map(([, v]) => `'${v}'`).join(', ')}`;
};

/** The names above as Lua functions, for the Redis scripts (`num` formats a number as the store writes it). */
export const LUA_NAMES = [
  luaKinds(),
  luaFunction('keyGate', gate.key, ['keyId']),
  luaFunction('accountGate', gate.account, ['account']),
  luaFunction('accountFreeGate', gate.accountFree, ['account']),
  luaFunction('accountModelGate', gate.accountModel, ['account', 'model']),
  luaFunction('modelGate', gate.model, ['model']),
  `local HOST_GATE = '${gate.host}'`,
  'local function scopeGate(scope, keyId, account, model)',
  ...Object.entries(SCOPE_GATES).map(([scope, named]) => `  if scope == '${scope}' then return ${luaName(named, ['keyId', 'account', 'model'])} end`),
  `  error('unknown scope ' .. scope)`,
  'end',
  luaFunction('keyMinuteCounter', counterKey.keyMinute, ['keyId', 'model']),
  luaFunction('keyDayCounter', counterKey.keyDay, ['keyId', 'model']),
  luaFunction('accountMinuteCounter', counterKey.accountMinute, ['account']),
  luaFunction('accountDayCounter', counterKey.accountDay, ['account']),
  luaFunction('learnedName', learnedCounter, ['name', 'w'], ['name', 'num(w)']),
].join('\n');
