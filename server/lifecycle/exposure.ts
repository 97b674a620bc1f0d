import { isIP } from 'node:net';
import type { Config } from '../../config';
import type { Logger } from '../observe/logger';

export interface ExposureWarning {
  code: 'open_relay' | 'status_open' | 'insecure_upstream' | 'foreign_upstream';
  message: string;
  fields?: Record<string, unknown>;
}

/** Whether a listening address is reachable only from this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (h.startsWith('::ffff:')) return isLoopbackHost(h.slice(7));
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * A URL as it may be logged: scheme, host and port only (no credentials, path or query). The
 * origin of an http(s) URL; for redis:// (whose URL.origin is "null") the same shape.
 */
export function safeOrigin(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * The risky parts of a configuration (docs/design.md#start-up-checks), as a pure list: orche still starts, since each can
 * be intended (a private network, a test upstream), but it says so once, at start-up.
 */
export function exposureWarnings(config: Config): ExposureWarning[] {
  const out: ExposureWarning[] = [];
  const exposed = !isLoopbackHost(config.host);
  if (exposed && config.clientTokens.length === 0) {
    out.push({
      code: 'open_relay',
      message: `orche listens on ${config.host} (beyond loopback) with no ORCHE_CLIENT_TOKENS: anyone who can reach it spends your keys`,
      fields: { host: config.host },
    });
  }
  if (exposed && !config.protectStatus) {
    out.push({
      code: 'status_open',
      message: `status routes (/status, /api/key-status, /metrics, …) are open on ${config.host} (beyond loopback): set ORCHE_PROTECT_STATUS=true`,
      fields: { host: config.host },
    });
  }
  let base: URL | undefined;
  try {
    base = new URL(config.upstream.baseUrl);
  } catch {
    base = undefined;
  }
  const origin = safeOrigin(config.upstream.baseUrl);
  if (base?.protocol === 'http:') {
    out.push({ code: 'insecure_upstream', message: 'OPENROUTER_BASE_URL uses http: the keys cross the network in clear text', fields: { base_url: origin } });
  }
  if (base && base.hostname !== 'openrouter.ai') {
    out.push({ code: 'foreign_upstream', message: 'OPENROUTER_BASE_URL is not OpenRouter: every key is sent to this host', fields: { base_url: origin } });
  }
  return out;
}

/** Logs each exposure warning once; called once at start-up. */
export function warnExposure(config: Config, logger: Logger): void {
  for (const w of exposureWarnings(config)) logger.warn(w.message, { code: w.code, ...w.fields });
}
