/** The key-pick micro-benchmark: microseconds per pick over a store, in process. */
import { keyId } from '../../providers/keys/keys';
import type { PickPlan, StateStore } from '../../providers/store/types';

export function planOf(keys: number): PickPlan {
  return {
    provider: `bench${keys}`,
    model: 'moonshotai/kimi-k2',
    free: false,
    candidates: Array.from({ length: keys }, (_, i) => {
      const id = keyId(`sk-or-v1-bench-${keys}-${i}`);
      return { keyId: id, account: `key:${id}` };
    }),
    rotating: keys,
    reserves: 0,
    trialTtlMs: 60_000,
  };
}

/** Mean µs per `await store.pick(...)`, as the request path pays it (counting included). */
export async function pickCost(store: StateStore, plan: PickPlan, picks: number): Promise<number> {
  const now = Date.now();
  for (let i = 0; i < Math.min(1000, picks); i++) await store.pick(plan, now); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < picks; i++) await store.pick(plan, now);
  return Number(process.hrtime.bigint() - start) / 1e3 / picks;
}
