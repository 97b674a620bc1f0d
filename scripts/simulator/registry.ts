/** The simulator's keys and the accounts that own them, with their request windows. */
import { keyId } from '../../providers/keys/keys';
import { type LimitedAccount, type LimitedKey, WindowCounter } from './limits';
import type { SimAccount, SimKey } from './types';

export interface KeyState extends LimitedKey {
  key: string;
  id: string;
  account: AccountState;
  credits: boolean;
  keyLimit?: { limit: number; remaining: number };
  revoked: boolean;
}

export type AccountState = LimitedAccount;

export class Registry {
  private readonly keys = new Map<string, KeyState>();
  private readonly accounts = new Map<string, AccountState>();

  /** `windowMs`: the length of the per-minute windows (a benchmark compresses them). */
  constructor(private readonly acceptAnyKey: boolean, private readonly windowMs?: number) {}

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
    if (existing !== undefined) {
      Object.assign(existing, { freeRpm, freeRpd, highBalance });
      return existing;
    }
    const created: AccountState = { id: a.id, freeRpm, freeRpd, highBalance, counter: new WindowCounter(this.windowMs) };
    this.accounts.set(a.id, created);
    return created;
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
      rpm: k.rpm,
      rpd: k.rpd,
      counter: existing?.counter ?? new WindowCounter(this.windowMs),
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
