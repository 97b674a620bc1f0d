import type { Config } from '../../config';
import { variablesOf } from '../../config/schema';
import type { AppContext } from '../context';

export interface ReloadReport {
  reloaded: true;
  providers: Array<{ provider: string; keys: number; added: string[]; removed: string[] }>;
  /** Settings that changed in the file but only take effect after a restart. */
  restart_required: string[];
}

/**
 * What a reload applies: providers (keys, model, strategy, budgets, fallback) and the free budgets.
 * Every other part of the config is read once at start; a change to it is reported, not applied.
 * The list is derived from the config itself, so a setting added later is reported too.
 */
const APPLIED: ReadonlySet<keyof Config> = new Set<keyof Config>(['providers', 'budgets']);

/** Applies a freshly parsed config to the running app: added keys join, removed keys leave, kept keys keep their state. */
export function applyReload(ctx: AppContext, next: Config): ReloadReport {
  const before = new Map(ctx.pool.list().map((p) => [p.config.slug, new Set(p.keys.keys())]));
  ctx.pool.reconfigure(next.providers, next.budgets);
  // A removed key's day of usage buckets (about 80 KB) would otherwise stay for the process's life.
  ctx.usage.retain(ctx.pool.list().flatMap((p) => [...p.keys.keys()].map((keyId) => ({ provider: p.config.slug, keyId }))));
  const providers = next.providers.map((p) => {
    const old = before.get(p.slug) ?? new Set<string>();
    const now = new Set(p.keys.map((k) => k.id));
    return { provider: p.slug, keys: now.size, added: [...now].filter((id) => !old.has(id)), removed: [...old].filter((id) => !now.has(id)) };
  });
  const fields = [...new Set([...Object.keys(ctx.config), ...Object.keys(next)])] as Array<keyof Config>;
  const restart = fields
    .filter((f) => !APPLIED.has(f) && JSON.stringify(ctx.config[f]) !== JSON.stringify(next[f]))
    .map((f) => variablesOf(f).join(' / ') || f);
  ctx.config = { ...ctx.config, providers: next.providers, budgets: next.budgets };
  return { reloaded: true, providers, restart_required: restart };
}
