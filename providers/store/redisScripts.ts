/**
 * The Lua side of the Redis store: each operation is one atomic script, one round trip.
 * They follow MemoryStore's rules exactly (tests/helpers/storeContract.ts runs the same tests on both).
 *
 * Layout under the prefix P (every name carries key ids, account names and model slugs, never a key):
 *   P g:<gate>        hash u (until ms), r (reason), p (recovering 0|1), q (trial call in flight until ms);
 *                     gates are k:<keyId>, a:<account>, f:<account>, m:<account>|<model>, c:<model>, h:edge
 *   P d:<keyId>       "reason@at" (reason '' : reactivated at `at`)     P s:<keyId>  "strikes@at"
 *   P al:<account>    "learned@at"             P pos:<provider> "index@at"
 *   P n:<counter>:<window>                     budget counter for one minute or UTC day
 *   P l:<gate>        hash <windowMs> → "<limit>|<learnedAt>|<anchor>|<source>": learned limits (a day),
 *                     their windows anchored at the upstream's last reset; counted in
 *                     P n:l:<gate>|<windowMs>:<window start ms>
 * The expiries are rules.ts's, checked against the caller's `now` (ARGV[2]) so that an injected
 * clock and Redis agree; Redis's own TTLs (the same lengths) only collect the garbage.
 */
import type Redis from 'ioredis';
import { WINDOWS } from '../limits/learnedLimit';
import { LUA_DOUBLING } from '../dispatch/backoff';
import { LUA_WINDOWS } from '../limits/windows';
import { LUA_NAMES } from './names';
import { EXPIRY, LEARNED_FULL } from './rules';

const PRELUDE = `
local P = ARGV[1]
local now = tonumber(ARGV[2])
local RECOVERING_MS, STRIKES_MS, DISABLED_MS = ${EXPIRY.recoveringMs}, ${EXPIRY.strikesMs}, ${EXPIRY.disabledMs}
local ACCOUNT_MS, POSITION_MS = ${EXPIRY.accountMs}, ${EXPIRY.positionMs}
local COUNTER_MARGIN_MS, CONGESTION_MARGIN_MS, PICK_ID_MS = ${EXPIRY.counterMarginMs}, ${EXPIRY.congestionMarginMs}, ${EXPIRY.pickIdMs}
local function num(n)
  if n == math.floor(n) then return string.format('%d', n) end
  return string.format('%.17g', n)
end
-- names.ts: the kinds of Redis names, gate and counter names (scopeGate: the gate a cooling or learning scope names), written into the script.
${LUA_NAMES}
-- Every PEXPIRE and PX takes this: Redis refuses a fractional expiry, and a window or deadline that
-- slipped through unrounded must not break the script (rounded up: never expires early).
local function ttl(n)
  return string.format('%d', math.ceil(n))
end
-- "value@at": the value and when it was written; a bare value (older orche) counts as written now.
local function stamped(v)
  if not v then return nil, nil end
  local value, at = string.match(v, '^(.*)@(%-?%d+)$')
  if value then return value, tonumber(at) end
  return v, now
end
local function fresh(key, ttl)
  local value, at = stamped(redis.call('GET', key))
  if value and now - at < ttl then return value end
  return nil
end
local function resolve(account)
  return fresh(P .. ACCOUNT_KIND .. account, ACCOUNT_MS) or account
end
local function disabled(keyId)
  local r = fresh(P .. DISABLED_KIND .. keyId, DISABLED_MS)
  if r and r ~= '' then return r end
  return nil
end
-- A gate has an effect while cooling, or recovering within RECOVERING_MS of its deadline.
local function live(u, p)
  return u > now or (p == '1' and u + RECOVERING_MS > now)
end
${LUA_DOUBLING}
-- names.ts keyGates (account already resolved).
local function gatesOf(keyId, account, model, free)
  local g = { keyGate(keyId), accountGate(account), accountModelGate(account, model) }
  if free then g[4] = accountFreeGate(account) end
  return g
end
local function counter(name, window)
  return P .. COUNTER_KIND .. name .. ':' .. num(window)
end
local function count(name, window)
  return tonumber(redis.call('GET', counter(name, window)) or '0')
end
-- providers/limits/windows.ts, written into the script.
${LUA_WINDOWS}
local minute = minuteWindow(now)
local day = dayWindow(now)
-- Learned limits (providers/limits/learnedLimit.ts): live for a day, by window length.
local LEARNED_TTL = ${EXPIRY.learnedMs}
local function learnedOf(name)
  local h = redis.call('HGETALL', P .. LEARNED_KIND .. name)
  local out = {}
  for i = 1, #h, 2 do
    local lim, at, anchor, src = string.match(h[i + 1], '^([^|]+)|([^|]+)|(%-?%d+)|(.*)$')
    -- A value written before anchors: windows on whole multiples (anchor 0).
    if not lim then
      lim, at, src = string.match(h[i + 1], '^([^|]+)|([^|]+)|(.*)$')
      anchor = '0'
    end
    if lim and now - tonumber(at) < LEARNED_TTL then
      out[#out + 1] = { w = tonumber(h[i]), limit = tonumber(lim), at = tonumber(at), anchor = tonumber(anchor), src = src }
    end
  end
  return out
end
-- learnedLimit.ts windowStart: the start of the learned limit's window that holds time t.
local function learnedStart(l, t)
  return l.anchor + math.floor((t - l.anchor) / l.w) * l.w
end
-- MemoryStore.holdFull: a learned limit's full window cools its gate until the window ends, then a trial.
local function holdFull(name, untilT)
  local k = P .. GATE_KIND .. name
  local g = redis.call('HMGET', k, 'u', 'p')
  if g[1] and live(tonumber(g[1]), g[2]) and tonumber(g[1]) >= untilT then return end
  redis.call('DEL', k)
  redis.call('HSET', k, 'u', num(untilT), 'r', '${LEARNED_FULL}', 'p', '1', 'q', '0')
  redis.call('PEXPIRE', k, ttl(math.max(untilT - now, 0) + RECOVERING_MS))
end
`;

/**
 * ARGV: P, now, provider, model, free, rotating, keyRpm, keyRpd, accountRpm, accountRpd (-1: none),
 * trialTtlMs, reserves, pick id, avoid count, avoid ids…, then keyId, account per candidate.
 * Returns {1, keyId, index, trial (1|0), learned limits counted (1|0)} or {0, retryAt (-1: none), reason}.
 */
const PICK = `
local provider, model = ARGV[3], ARGV[4]
local free = ARGV[5] == '1'
local rotating = tonumber(ARGV[6])
local keyRpm, keyRpd = tonumber(ARGV[7]), tonumber(ARGV[8])
local accRpm, accRpd = tonumber(ARGV[9]), tonumber(ARGV[10])
local trialTtl = tonumber(ARGV[11])
local reserves = tonumber(ARGV[12])
local pickId = ARGV[13]
local nAvoid = tonumber(ARGV[14])
local avoid = {}
for i = 1, nAvoid do avoid[ARGV[14 + i]] = true end
local base = 14 + nAvoid
local n = (#ARGV - base) / 2
local regular = n - reserves

local edge = redis.call('HGET', P .. GATE_KIND .. HOST_GATE, 'u')
if edge and tonumber(edge) > now then return {0, edge, 'edge'} end
local congested = redis.call('HGET', P .. GATE_KIND .. modelGate(model), 'u')
if congested and tonumber(congested) > now then return {0, congested, 'congested'} end

local start = 0
if rotating > 0 then start = tonumber(fresh(P .. POSITION_KIND .. provider, POSITION_MS) or '0') % rotating end

local function budgetBlock(keyId, account)
  local untilT = 0
  if keyRpd >= 0 and count(keyDayCounter(keyId, model), day) >= keyRpd then untilT = nextUtcMidnight(now)
  elseif keyRpm >= 0 and count(keyMinuteCounter(keyId, model), minute) >= keyRpm then untilT = nextMinute(now) end
  if free then
    if accRpd >= 0 and count(accountDayCounter(account), day) >= accRpd then untilT = math.max(untilT, nextUtcMidnight(now))
    elseif accRpm >= 0 and count(accountMinuteCounter(account), minute) >= accRpm then untilT = math.max(untilT, nextMinute(now)) end
  end
  return untilT
end

local function learnedBlock(gs)
  local untilT = 0
  for _, name in ipairs(gs) do
    for _, l in ipairs(learnedOf(name)) do
      local start = learnedStart(l, now)
      if count(learnedName(name, l.w), start) >= l.limit then untilT = math.max(untilT, start + l.w) end
    end
  end
  return untilT
end

-- One more call in a counter's window, which ends at 'ends'.
local function bump(name, window, ends)
  local k = counter(name, window)
  if redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, ttl(ends - now + COUNTER_MARGIN_MS)) end
end

local function choose(useAvoid, limit)
  local soonest = -1
  local anyEnabled, budgetBound = false, false
  local function hold(t)
    if soonest < 0 or t < soonest then soonest = t end
  end
  for i = 0, limit - 1 do
    local index = i
    if i < rotating then index = (start + i) % rotating end
    local keyId = ARGV[base + 1 + index * 2]
    if not (useAvoid and avoid[keyId]) and not disabled(keyId) then
      anyEnabled = true
      local account = resolve(ARGV[base + 2 + index * 2])
      local blocked, trial, recovering, full = 0, false, {}, false
      local gs = gatesOf(keyId, account, model, free)
      for _, name in ipairs(gs) do
        local g = redis.call('HMGET', P .. GATE_KIND .. name, 'u', 'p', 'q', 'r')
        if g[1] and live(tonumber(g[1]), g[2]) then
          local u = tonumber(g[1])
          if u > now then
            blocked = math.max(blocked, u)
            -- A learned limit's full window is a spent budget, not a 429's cooldown.
            if g[4] == '${LEARNED_FULL}' then full = true end
          else
            local q = tonumber(g[3] or '0')
            if q > now then blocked = math.max(blocked, math.min(q, now + 1000)) else trial = true end
            recovering[#recovering + 1] = P .. GATE_KIND .. name
          end
        end
      end
      if blocked > 0 then
        if full then budgetBound = true end
        hold(blocked)
      else
        local b = math.max(budgetBlock(keyId, account), learnedBlock(gs))
        if b > 0 then
          budgetBound = true
          hold(b)
        else
          if trial then
            for _, k in ipairs(recovering) do
              redis.call('HSET', k, 'q', num(now + trialTtl))
            end
          end
          bump(keyMinuteCounter(keyId, model), minute, nextMinute(now))
          bump(keyDayCounter(keyId, model), day, nextUtcMidnight(now))
          if free then
            bump(accountMinuteCounter(account), minute, nextMinute(now))
            bump(accountDayCounter(account), day, nextUtcMidnight(now))
          end
          local learned = 0
          for _, name in ipairs(gs) do
            for _, l in ipairs(learnedOf(name)) do
              local start = learnedStart(l, now)
              bump(learnedName(name, l.w), start, start + l.w)
              if count(learnedName(name, l.w), start) >= l.limit then holdFull(name, start + l.w) end
              learned = 1
            end
          end
          -- Counted here: a merge after a timed-out reply must not count this pick again.
          redis.call('SET', P .. PICK_KIND .. pickId, '1', 'PX', ttl(PICK_ID_MS))
          if index < rotating then redis.call('SET', P .. POSITION_KIND .. provider, num(index + 1) .. '@' .. num(now), 'PX', ttl(POSITION_MS)) end
          return {1, keyId, index, trial and 1 or 0, learned}
        end
      end
    end
  end
  if not anyEnabled then return {0, -1, 'disabled'} end
  return {0, num(soonest), budgetBound and 'budget' or 'cooling'}
end

-- With keys to avoid: other non-reserve keys, the avoided non-reserve keys, other reserves, everything.
if nAvoid > 0 then
  local r = choose(true, regular)
  if r[1] == 1 then return r end
  r = choose(false, regular)
  if r[1] == 1 then return r end
  r = choose(true, n)
  if r[1] == 1 then return r end
end
return choose(false, n)
`;

/** ARGV: P, now, keyId, account, model, scope, until (-1: doubling), reason, baseMs, maxMs, strike (1|0). */
const COOL = `
local keyId, model, scope = ARGV[3], ARGV[5], ARGV[6]
local sk = P .. STRIKES_KIND .. keyId
local strikes = tonumber(fresh(sk, STRIKES_MS) or '0')
if ARGV[11] == '1' then
  strikes = strikes + 1
  redis.call('SET', sk, num(strikes) .. '@' .. num(now), 'PX', ttl(STRIKES_MS))
end
local untilT = tonumber(ARGV[7])
if untilT < 0 then
  untilT = now + doubling(strikes, tonumber(ARGV[9]), tonumber(ARGV[10]))
end
local k = P .. GATE_KIND .. scopeGate(scope, keyId, resolve(ARGV[4]), model)
local current = redis.call('HMGET', k, 'u', 'p', 'r')
if current[1] and live(tonumber(current[1]), current[2]) and tonumber(current[1]) >= untilT then
  redis.call('HSET', k, 'p', '1')
  -- A full window's hold that a 429 met is the upstream's now: a refund no longer opens it.
  if current[3] == '${LEARNED_FULL}' then redis.call('HSET', k, 'r', ARGV[8]) end
  redis.call('PEXPIRE', k, ttl(math.max(tonumber(current[1]) - now, 0) + RECOVERING_MS))
  return current[1]
end
redis.call('DEL', k)
redis.call('HSET', k, 'u', num(untilT), 'r', ARGV[8], 'p', '1', 'q', '0')
redis.call('PEXPIRE', k, ttl(math.max(untilT - now, 0) + RECOVERING_MS))
return num(untilT)
`;

/**
 * ARGV: P, now, keyId, account, model, scope, limit, windowMs, resetAt, source, merging (1|0), lengthen (1|0),
 * used (the upstream's count of the current window; -1: none).
 * MemoryStore.learnLimit's rule: the limit of the same kind is replaced; a 429's (lengthen) window only
 * lengthens; its windows are anchored at resetAt; `used` raises the current window's count to it.
 * Merging a lesson from while Redis was away (`now`: when it was learned): a limit of the same kind
 * learned at that instant or later stays, as the later learned_at wins (returns -1).
 */
const LEARN = `
local keyId, model, scope = ARGV[3], ARGV[5], ARGV[6]
local limit, windowMs, resetAt = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local lengthen = ARGV[12] == '1'
local gateName = scopeGate(scope, keyId, resolve(ARGV[4]), model)
local k = P .. LEARNED_KIND .. gateName
-- providers/limits/learnedLimit.ts WINDOWS, written into the script.
local WINDOWS = { ${WINDOWS.join(', ')} }
local h = redis.call('HGETALL', k)
if ARGV[11] == '1' then
  for i = 1, #h, 2 do
    local _, at = string.match(h[i + 1], '^([^|]+)|([^|]+)|')
    if (tonumber(h[i]) <= MINUTE) == (windowMs <= MINUTE) and tonumber(at or '0') >= now then return '-1' end
  end
end
local w = windowMs
for i = 1, #h, 2 do
  local cw = tonumber(h[i])
  local _, at = string.match(h[i + 1], '^([^|]+)|([^|]+)|')
  at = tonumber(at or '0')
  if now - at >= LEARNED_TTL then
    redis.call('HDEL', k, h[i])
  elseif (cw <= MINUTE) == (windowMs <= MINUTE) then
    if lengthen then w = math.max(w, cw) end
    -- Learned in an earlier window than this 429's: counting by it was too short (relearnedWindow).
    if lengthen and at < math.floor(now / cw) * cw then
      local cap = DAY
      if cw <= MINUTE then cap = MINUTE end
      for _, x in ipairs(WINDOWS) do
        if x > cw and x <= cap and resetAt % x == 0 then
          w = math.max(w, x)
          break
        end
      end
    end
    redis.call('HDEL', k, h[i])
  end
end
redis.call('HSET', k, num(w), num(limit) .. '|' .. num(now) .. '|' .. num(resetAt) .. '|' .. ARGV[10])
redis.call('PEXPIRE', k, ttl(LEARNED_TTL))
local used = tonumber(ARGV[13] or '-1')
if used >= 0 then
  local start = learnedStart({ w = w, anchor = resetAt }, now)
  local c = counter(learnedName(gateName, w), start)
  if tonumber(redis.call('GET', c) or '0') < used then
    redis.call('SET', c, num(used), 'PX', ttl(start + w - now + COUNTER_MARGIN_MS))
  end
  if math.max(used, tonumber(redis.call('GET', c) or '0')) >= limit then holdFull(gateName, start + w) end
end
return num(w)
`;

/** ARGV: P, pickedAt (as now), keyId, account, model, free. A call the upstream refused itself stops counting. */
const REFUND = `
for _, name in ipairs(gatesOf(ARGV[3], resolve(ARGV[4]), ARGV[5], ARGV[6] == '1')) do
  for _, l in ipairs(learnedOf(name)) do
    local start = learnedStart(l, now)
    local c = counter(learnedName(name, l.w), start)
    if tonumber(redis.call('GET', c) or '0') > 0 then
      -- Room again in the window: the gate its fullness cooled opens (a 429's cooldown stays).
      -- (Not once the next window counts: the gate is that window's trial by then.)
      if redis.call('DECR', c) < l.limit and redis.call('EXISTS', counter(learnedName(name, l.w), start + l.w)) == 0 then
        local k = P .. GATE_KIND .. name
        local g = redis.call('HMGET', k, 'u', 'r')
        if g[2] == '${LEARNED_FULL}' and tonumber(g[1]) == start + l.w then redis.call('DEL', k) end
      end
    end
  end
end
return 1
`;

/** ARGV: P, now, gate (c:<model>, or h:edge for the host), until, reason. */
const CONGEST = `
local k = P .. GATE_KIND .. ARGV[3]
local untilT = tonumber(ARGV[4])
local current = redis.call('HGET', k, 'u')
if current and tonumber(current) >= untilT then return 0 end
redis.call('DEL', k)
redis.call('HSET', k, 'u', ARGV[4], 'r', ARGV[5], 'p', '0', 'q', '0')
redis.call('PEXPIRE', k, ttl(math.max(untilT - now, 0) + CONGESTION_MARGIN_MS))
return 1
`;

/** ARGV: P, now, keyId, account, model, free. Resets the doubling and opens recovered gates. */
const SUCCEED = `
redis.call('DEL', P .. STRIKES_KIND .. ARGV[3])
for _, name in ipairs(gatesOf(ARGV[3], resolve(ARGV[4]), ARGV[5], ARGV[6] == '1')) do
  local k = P .. GATE_KIND .. name
  local g = redis.call('HMGET', k, 'u', 'p')
  -- A gate cooled again meanwhile (by another request) stays shut.
  if g[1] and g[2] == '1' and tonumber(g[1]) <= now then redis.call('DEL', k) end
end
return 1
`;

/** ARGV: P, now, keyId, account, model, free. A trial call ended without success: its hold on the gates ends. */
const END_TRIAL = `
for _, name in ipairs(gatesOf(ARGV[3], resolve(ARGV[4]), ARGV[5], ARGV[6] == '1')) do
  local k = P .. GATE_KIND .. name
  if redis.call('HGET', k, 'p') == '1' then redis.call('HSET', k, 'q', '0') end
end
return 1
`;

/** ARGV: P, now, then keyId, account, model, free per view. Clears their gates, model congestion, strikes. */
const RESET = `
for i = 3, #ARGV, 4 do
  local keyId, model = ARGV[i], ARGV[i + 2]
  for _, name in ipairs(gatesOf(keyId, resolve(ARGV[i + 1]), model, ARGV[i + 3] == '1')) do redis.call('DEL', P .. GATE_KIND .. name) end
  redis.call('DEL', P .. GATE_KIND .. modelGate(model), P .. STRIKES_KIND .. keyId)
end
return 1
`;

/**
 * ARGV: P, now, then keyId, account, model, free per view.
 * Returns per view {disabled|'', cooldownUntil, reason|'', account, recovering, minuteCount, dayCount,
 * learned: flat gate, windowMs, limit, learnedAt, source, used, anchor per learned limit}.
 */
const INSPECT = `
local out = {}
for i = 3, #ARGV, 4 do
  local keyId, model = ARGV[i], ARGV[i + 2]
  local account = resolve(ARGV[i + 1])
  local cooldown, reason, recovering = 0, '', 0
  local learned = {}
  for _, name in ipairs(gatesOf(keyId, account, model, ARGV[i + 3] == '1')) do
    for _, l in ipairs(learnedOf(name)) do
      local used = count(learnedName(name, l.w), learnedStart(l, now))
      for _, v in ipairs({ name, num(l.w), num(l.limit), num(l.at), l.src, num(used), num(l.anchor) }) do learned[#learned + 1] = v end
    end
    local g = redis.call('HMGET', P .. GATE_KIND .. name, 'u', 'r', 'p')
    if g[1] and live(tonumber(g[1]), g[3]) then
      local u = tonumber(g[1])
      if u > now and u > cooldown then
        cooldown = u
        reason = g[2] or ''
      end
      if g[3] == '1' then recovering = 1 end
    end
  end
  out[#out + 1] = {
    disabled(keyId) or '', num(cooldown), reason, account, recovering,
    count(keyMinuteCounter(keyId, model), minute), count(keyDayCounter(keyId, model), day), learned,
  }
end
return out
`;

/**
 * ARGV: P, now, keyId, reason ('' : reactivated), at. A disabled flag or reactivation made while Redis
 * was away: the later admin action wins. A reactivation also clears the key's own gate and strikes.
 */
const MERGE_DISABLED = `
local keyId, reason, at = ARGV[3], ARGV[4], tonumber(ARGV[5])
local k = P .. DISABLED_KIND .. keyId
local _, current = stamped(redis.call('GET', k))
if current and current >= at then return 0 end
redis.call('SET', k, reason .. '@' .. num(at), 'PX', ttl(DISABLED_MS))
if reason == '' then redis.call('DEL', P .. GATE_KIND .. keyGate(keyId), P .. STRIKES_KIND .. keyId) end
return 1
`;

/** ARGV: P, now, account, learned, at. A learned account from while Redis was away: the later wins. */
const MERGE_ACCOUNT = `
local k = P .. ACCOUNT_KIND .. ARGV[3]
local _, current = stamped(redis.call('GET', k))
if current and current >= tonumber(ARGV[5]) then return 0 end
redis.call('SET', k, ARGV[4] .. '@' .. ARGV[5], 'PX', ttl(ACCOUNT_MS))
return 1
`;

/**
 * ARGV: P, now, then per entry: its id, a counter count n, then n × (counter name, window, window end,
 * count). An entry is one pick, or the picks of an outage summed. They add up, except an entry Redis
 * has already counted (a pick whose script ran while its reply timed out, or an earlier merge whose
 * reply was lost): its id is known and it is skipped.
 */
const ADD_COUNTS = `
local i = 3
local added = 0
while i <= #ARGV do
  local id, n = P .. PICK_KIND .. ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('SET', id, '1', 'NX', 'PX', ttl(PICK_ID_MS)) then
    added = added + 1
    for j = 0, n - 1 do
      local b = i + 2 + j * 4
      local window, ends = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
      if ends > now then
        local k = counter(ARGV[b], window)
        redis.call('INCRBY', k, ARGV[b + 3])
        redis.call('PEXPIRE', k, ttl(ends - now + COUNTER_MARGIN_MS))
      end
    end
  end
  i = i + 2 + n * 4
end
return added
`;

type Arg = string | number;

/** The scripts as ioredis commands (EVALSHA, falling back to EVAL after a Redis restart). */
export interface StoreScripts {
  orchePick(...args: Arg[]): Promise<[1, string, number, number, number] | [0, string | number, 'cooling' | 'budget' | 'congested' | 'disabled' | 'edge']>;
  orcheCool(...args: Arg[]): Promise<string>;
  orcheCongest(...args: Arg[]): Promise<number>;
  orcheSucceed(...args: Arg[]): Promise<number>;
  orcheEndTrial(...args: Arg[]): Promise<number>;
  orcheReset(...args: Arg[]): Promise<number>;
  orcheInspect(...args: Arg[]): Promise<Array<[string, string, string, string, number, number, number, string[]]>>;
  orcheMergeDisabled(...args: Arg[]): Promise<number>;
  orcheMergeAccount(...args: Arg[]): Promise<number>;
  orcheAddCounts(...args: Arg[]): Promise<number>;
  orcheLearn(...args: Arg[]): Promise<string>;
  orcheRefund(...args: Arg[]): Promise<number>;
}

const SCRIPTS: Record<keyof StoreScripts, string> = {
  orchePick: PICK,
  orcheCool: COOL,
  orcheCongest: CONGEST,
  orcheSucceed: SUCCEED,
  orcheEndTrial: END_TRIAL,
  orcheReset: RESET,
  orcheInspect: INSPECT,
  orcheMergeDisabled: MERGE_DISABLED,
  orcheMergeAccount: MERGE_ACCOUNT,
  orcheAddCounts: ADD_COUNTS,
  orcheLearn: LEARN,
  orcheRefund: REFUND,
};

export function defineScripts(redis: Redis): Redis & StoreScripts {
  for (const [name, body] of Object.entries(SCRIPTS)) redis.defineCommand(name, { numberOfKeys: 0, lua: PRELUDE + body });
  return redis as Redis & StoreScripts;
}
