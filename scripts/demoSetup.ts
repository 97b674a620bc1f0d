/**
 * The demo's world: six providers with three keys each on a simulated OpenRouter. Shared by
 * `npm run demo`, `npm run test:rotation` (self-contained mode) and the tests that want "a demo instance".
 */
import { BUILTIN_PROVIDERS } from '../config/providers';
import type { Env } from '../config';
import type { SimKey } from './simulator';

export const DEMO_ADMIN_TOKEN = 'demo-admin-token';

/** Demo keys look like real ones, but the simulator is the only place that accepts them. */
export function demoKey(providerId: string, n: number): string {
  return `sk-or-v1-demo-${providerId.toLowerCase()}-${n}-${'0123456789abcdef'.slice(n, n + 8)}`;
}

export interface DemoWorld {
  env: Env;
  simKeys: SimKey[];
}

/** Three keys per provider, each on its own account, limited upstream at `rpm` calls per minute per key. */
export function demoWorld(simBaseUrl: string, rpm = 30): DemoWorld {
  const env: Env = {
    OPENROUTER_BASE_URL: simBaseUrl,
    ORCHE_ADMIN_TOKEN: DEMO_ADMIN_TOKEN,
    ORCHE_MAX_WAIT_MS: '3000',
  };
  const simKeys: SimKey[] = [];
  for (const p of BUILTIN_PROVIDERS) {
    const keys = [1, 2, 3].map((n) => demoKey(p.id, n));
    env[`PROVIDER_${p.id}_API_KEY`] = keys[0];
    env[`PROVIDER_${p.id}_BACKUP_KEYS`] = keys.slice(1).join(',');
    for (const key of keys) simKeys.push({ key, rpm });
  }
  return { env, simKeys };
}
