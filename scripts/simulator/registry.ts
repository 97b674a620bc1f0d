/** The simulator's keys and the accounts that own them, with their request windows. */
import { keyId } from '../../providers/keys/keys';
import { type LimitedAccount, type LimitedKey, WindowCounter, type WindowMode } from './limits';
import type { SimAccount, SimKey } from './types';

export interface KeyState extends LimitedKey {
  key: string;
  id: string;
  account: AccountState;
  credits: boolean;
  keyLimit?: { limit: number; remaining: number };
  revoked: boolean;
  expiresAt: string | null;
  rateLimit: { requests: number; interval: string };
}

export type AccountState = LimitedAccount;

/**
 * GET /key's deprecated `rate_limit` as OpenRouter's API reference shows it (documented example,
 * openrouter.ai/docs/api/api-reference/api-keys/get-current-key, 2026): 1000 requests per 1h, with the
 * note that it is safe to ignore. orche must show it and never enforce it (docs/design.md#what-get-key-is-used-for).
 */
export const DOCUMENTED_RATE_LIMIT = { requests: 1000, interval: '1h' };

export class Registry {
  private readonly keys = new Map<string, KeyState>();
  private readonly accounts = new Map<string, AccountState>();

  /** `windowMs`: the length of the per-minute windows (a benchmark compresses them); `windowMode`: how they open. */
  constructor(private readonly acceptAnyKey: boolean, private readonly windowMs?: number, private readonly windowMode: WindowMode = 'aligned', private readonly now: () => number = Date.now) {}

  /** The key's state; in acceptAnyKey mode an unknown key is created on its own account. */
  resolve(key: string): KeyState | undefined {
    const known = this.keys.get(key);
    if (known !== undefined || !this.acceptAnyKey || key === '') return known;
    return this.addKey({ key });
  }

  addAccount(a: SimAccount): AccountState {
    const highBalance = a.highBalance === true;
    const freeRpm = a.freeRpm ?? 20;
    const freeRpd = a.freeRpd ?? (highBalance ? 1000 : 50);
    const existing = this.accounts.get(a.id);
    const account = existing ?? { id: a.id, freeRpm, freeRpd, highBalance, counter: new WindowCounter(this.windowMs, this.windowMode) };
    Object.assign(account, { freeRpm, freeRpd, highBalance });
    if (a.usedToday !== undefined) account.counter.seedDay(this.now(), a.usedToday);
    this.accounts.set(a.id, account);
    return account;
  }

  /** Adds a key, or replaces the configuration of a known one (its counters are kept). */
  addKey(k: SimKey): KeyState {
    const id = keyId(k.key);
    const accountId = k.account ?? `user_${id}`;
    const account = this.accounts.get(accountId) ?? this.addAccount({ id: accountId });
    const existing = this.keys.get(k.key);
    const state: KeyState = {
      key: k.key,
      id,
      account,
      credits: k.credits !== false,
      keyLimit: k.keyLimit === undefined ? undefined : { ...k.keyLimit },
      revoked: k.revoked === true,
      expiresAt: k.expiresAt ?? null,
      rateLimit: k.rateLimit ?? DOCUMENTED_RATE_LIMIT,
      rpm: k.rpm,
      rpd: k.rpd,
      counter: existing?.counter ?? new WindowCounter(this.windowMs, this.windowMode),
    };
    this.keys.set(k.key, state);
    return state;
  }

  /** Applies a patch to a known key; an unknown key is added with the patch. */
  updateKey(key: string, patch: Partial<SimKey>): KeyState {
    const existing = this.keys.get(key);
    const current: SimKey = existing === undefined ? { key } : {
      key,
      account: existing.account.id,
      credits: existing.credits,
      keyLimit: existing.keyLimit,
      revoked: existing.revoked,
      expiresAt: existing.expiresAt,
      rateLimit: existing.rateLimit,
      rpm: existing.rpm,
      rpd: existing.rpd,
    };
    return this.addKey({ ...current, ...patch, key });
  }

  resetCounters(): void {
    for (const k of this.keys.values()) k.counter.clear();
    for (const a of this.accounts.values()) a.counter.clear();
  }
}
