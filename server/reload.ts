import type { Config } from '../config';
import type { AppContext } from './context';

export interface ReloadReport {
  reloaded: true;
  providers: Array<{ provider: string; keys: number; added: string[]; removed: string[] }>;
  /** Settings that changed in the file but only take effect after a restart. */
  restart_required: string[];
}

/**
 * What a reload applies: providers (keys, model, strategy, budgets, fallback) and the free budgets.
 * Everything else is read once at start; a change to it is reported, not applied.
 */
const RESTART_ONLY: Array<[keyof Config, string]> = [
  ['port', 'PORT'],
  ['host', 'HOST'],
  ['upstream', 'OPENROUTER_BASE_URL / OPENROUTER_REFERER / OPENROUTER_TITLE'],
  ['rotation', 'ORCHE_COOLDOWN_MS / ORCHE_MAX_COOLDOWN_MS / ORCHE_MAX_ATTEMPTS / ORCHE_MAX_WAIT_MS / ORCHE_BACKOFF_* / ORCHE_REQUEST_TIMEOUT_MS'],
  ['adminToken', 'ORCHE_ADMIN_TOKEN'],
  ['clientTokens', 'ORCHE_CLIENT_TOKENS'],
  ['corsOrigins', 'ORCHE_CORS_ORIGINS'],
  ['protectStatus', 'ORCHE_PROTECT_STATUS'],
  ['bodyLimit', 'ORCHE_BODY_LIMIT'],
  ['stateFile', 'ORCHE_STATE_FILE'],
  ['redis', 'REDIS_URL / ORCHE_REDIS_PREFIX'],
  ['log', 'LOG_LEVEL / LOG_FORMAT'],
  ['ops', 'ORCHE_PROBE_INTERVAL_MS / ORCHE_SHUTDOWN_GRACE_MS / ORCHE_ALERT_*'],
];

/** Applies a freshly parsed config to the running app: added keys join, removed keys leave, kept keys keep their state. */
export function applyReload(ctx: AppContext, next: Config): ReloadReport {
  const before = new Map(ctx.pool.list().map((p) => [p.config.slug, new Set(p.keys.keys())]));
  ctx.pool.reconfigure(next.providers, next.budgets);
  const providers = next.providers.map((p) => {
    const old = before.get(p.slug) ?? new Set<string>();
    const now = new Set(p.keys.map((k) => k.id));
    return { provider: p.slug, keys: now.size, added: [...now].filter((id) => !old.has(id)), removed: [...old].filter((id) => !now.has(id)) };
  });
  const restart = RESTART_ONLY.filter(([field]) => JSON.stringify(ctx.config[field]) !== JSON.stringify(next[field])).map(([, vars]) => vars);
  ctx.config = { ...ctx.config, providers: next.providers, budgets: next.budgets };
  return { reloaded: true, providers, restart_required: restart };
}
