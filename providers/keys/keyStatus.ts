/** The key-status view: one key's state, reason, cooldown and counters, as the status routes show it. */
import type { KeyConfig } from '../../config';
import type { ProviderRuntime } from './keyPool';
import { LEARNED_TTL_MS } from '../limits/learnedLimit';
import { scopeOfGate } from '../store/names';
import type { StateStore } from '../store/types';

export type KeyState = 'active' | 'cooling' | 'disabled';

export interface KeyStatus {
  id: string;
  preview: string;
  role: KeyConfig['role'];
  account: string;
  state: KeyState;
  reason: string | null;
  cooldown_until: number | null;
  cooldown_remaining_ms: number;
  recovering: boolean;
  requests: number;
  successes: number;
  rate_limited: number;
  failures: number;
  calls_this_minute: number;
  calls_today: number;
  avg_latency_ms: number | null;
  tokens: number;
  last_used_at: string | null;
  limit: number | null;
  remaining: number | null;
  reset_at: string | null;
  /** Limits learned from 429s or GET /key for this key's scopes (docs/design.md#learned-limits); each lasts a day. */
  learned_limits: LearnedLimitStatus[];
}

export interface LearnedLimitStatus {
  /** 'key', 'account', 'account_free' or 'account_model'. */
  scope: string;
  limit: number;
  window_ms: number;
  /** Calls counted in the current window. */
  used: number;
  source: string;
  learned_at: string;
  expires_at: string;
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** Reads the keys' state from the store in one call and joins it with their counters. */
export async function describeKeys(store: StateStore, provider: ProviderRuntime, now: number): Promise<KeyStatus[]> {
    const views = [...provider.views.values()];
    const inspected = await store.inspect(views, now);
    return views.map((v, i) => {
      const k = provider.keys.get(v.keyId)!;
      const s = provider.stats.get(v.keyId)!;
      const st = inspected[i];
      const state: KeyState = st.disabled ? 'disabled' : st.cooldownUntil > now ? 'cooling' : 'active';
      return {
        id: k.id,
        preview: k.preview,
        role: k.role,
        account: st.account,
        state,
        reason: st.disabled ?? (state === 'cooling' ? st.cooldownReason : st.recovering ? 'recovering' : null),
        cooldown_until: state === 'cooling' ? st.cooldownUntil : null,
        cooldown_remaining_ms: state === 'cooling' ? st.cooldownUntil - now : 0,
        recovering: st.recovering && state === 'active',
        requests: s.requests,
        successes: s.successes,
        rate_limited: s.rateLimited,
        failures: s.failures,
        calls_this_minute: st.minuteCount,
        calls_today: st.dayCount,
        avg_latency_ms: s.requests ? Math.round(s.latencyTotalMs / s.requests) : null,
        tokens: s.tokens,
        last_used_at: iso(s.lastUsedAt),
        limit: s.limit,
        remaining: s.remaining,
        reset_at: iso(s.resetAt),
        learned_limits: (st.learned ?? []).map((l) => ({
          scope: scopeOfGate(l.gate) ?? l.gate,
          limit: l.limit,
          window_ms: l.windowMs,
          used: l.used,
          source: l.source,
          learned_at: iso(l.learnedAt)!,
          expires_at: iso(l.learnedAt + LEARNED_TTL_MS)!,
        })),
      };
    });
  }
