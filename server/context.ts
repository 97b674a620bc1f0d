import type { Request, Response } from 'express';
import type { Config } from '../config';
import type { ChatService } from '../providers/dispatch/chat';
import type { KeyPool, KeyStatus, ProviderRuntime } from '../providers/keys/keyPool';
import type { KeyProber } from '../providers/keys/keyProbe';
import type { RotationHistory } from '../providers/keys/rotationHistory';
import type { Logger } from './observe/logger';
import type { Metrics } from './observe/metrics';
import type { ReloadReport } from './lifecycle/reload';
import type { EndUsers } from './limits/endUsers';
import type { UsageTracker } from './observe/usage';

/** Everything the routes share; built once by createApp. */
export interface AppContext {
  config: Config;
  pool: KeyPool;
  chat: ChatService;
  history: RotationHistory;
  logger: Logger;
  now: () => number;
  startedAt: number;
  version: string;
  /** Configured slugs the upstream's /models did not list (null until checked, or when it failed). */
  modelCheck: { checked: boolean; missing: string[] };
  /** Unhandled rejections and exceptions caught and logged instead of stopping the process. */
  processErrors: number;
  metrics: Metrics;
  usage: UsageTracker;
  /** End users named by frontends (X-Orche-User / `user`): counts and limits. */
  endUsers: EndUsers;
  prober: KeyProber;
  /**
   * A request that makes `legs` upstream calls (a fan-out, known once its route resolved the
   * providers) is charged per leg against the client's limits: requests per minute and open
   * streams (docs/design.md#streams-that-outlive-their-reader). Throws the 429 when that passes a limit.
   */
  chargeLegs(req: Request, res: Response, legs: number): Promise<void>;
  /** Open client connections and their cap (server/http/connections.ts); undefined until the server listens. */
  connections?: () => { open: number; max: number } | undefined;
  /** Re-reads the environment file and applies provider/key/budget settings; throws ConfigError on a bad file. */
  reload(): ReloadReport;
}

export interface ProviderSummary {
  provider: ProviderRuntime;
  keys: KeyStatus[];
  counts: { total: number; active: number; cooling: number; disabled: number };
  available: boolean;
  congestedUntil: number;
}

export async function summarize(ctx: AppContext, provider: ProviderRuntime): Promise<ProviderSummary> {
  const now = ctx.now();
  const [keys, congestedUntil] = await Promise.all([ctx.pool.keyStatuses(provider, now), ctx.pool.congestedUntil(provider, now)]);
  const counts = { total: keys.length, active: 0, cooling: 0, disabled: 0 };
  for (const k of keys) counts[k.state]++;
  return { provider, keys, counts, available: counts.active > 0 && congestedUntil === 0, congestedUntil };
}
