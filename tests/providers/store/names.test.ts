/** Gate and counter names (providers/store/names.ts): one definition, read back by it, written into Lua by it. */
import type { CoolScope } from '../../../providers/limits/rateLimit';
import { counterKey, gate, learnedCounter, learnedCounterWindow, LUA_NAMES, scopeGate, scopeOfGate } from '../../../providers/store/names';

test('each scope is read back from the gate it names; a model or host gate is no scope', () => {
  for (const scope of ['key', 'account', 'account_free', 'account_model'] as CoolScope[]) {
    expect(scopeOfGate(scopeGate(scope, 'k1', 'acct', 'some/model'))).toBe(scope);
  }
  expect(scopeOfGate(gate.model('some/model'))).toBeUndefined();
  expect(scopeOfGate(gate.host)).toBeUndefined();
});

test('a learned counter names its window; budget counters are not learned ones', () => {
  expect(learnedCounterWindow(learnedCounter(gate.accountModel('a', 'm'), 60_000))).toBe(60_000);
  expect(learnedCounterWindow(counterKey.keyMinute('k1', 'm'))).toBeUndefined();
});

test('the Lua functions build the names the TypeScript builds', () => {
  expect(LUA_NAMES).toContain("local function accountModelGate(account, model) return 'm:' .. account .. '|' .. model end");
  expect(LUA_NAMES).toContain("local function keyMinuteCounter(keyId, model) return 'km:' .. keyId .. '|' .. model end");
  expect(LUA_NAMES).toContain("local function learnedName(name, w) return 'l:' .. name .. '|' .. num(w) end");
  expect(LUA_NAMES).toContain(`local HOST_GATE = '${gate.host}'`);
  expect(LUA_NAMES).toContain("if scope == 'account_free' then return 'f:' .. account end");
});
