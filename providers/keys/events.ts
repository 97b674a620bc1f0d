import { EventEmitter } from 'node:events';
import type { CoolScope } from '../limits/rateLimit';

/** What the key pool announces; the logger, metrics and rotation history listen. */
export interface PoolEvents {
  rotated: { at: number; provider: string; from: string; to: string; reason: string };
  cooled: { at: number; provider: string; keyId: string; scope: CoolScope; until: number; reason: string };
  disabled: { at: number; provider: string; keyId: string; reason: string };
  reactivated: { at: number; keyId: string };
  recovered: { at: number; provider: string; keyId: string };
  congested: { at: number; provider: string; model: string; until: number; reason: string };
  /** The edge in front of the upstream refused this host: every provider waits until `until`. */
  edge: { at: number; provider: string; keyId: string; until: number; reason: string };
  account_learned: { at: number; keyId: string; account: string };
  /** GET /key shows the key expires within a day (docs/design.md#what-get-key-is-used-for): announced at each probe until it does. */
  key_expiring: { at: number; keyId: string; providers: string[]; expiresAt: number };
  /** A 429 (or GET /key) taught the limit of a scope: `limit` calls per `windowMs`. */
  limit_learned: { at: number; provider: string; keyId: string; scope: CoolScope; limit: number; windowMs: number };
  /** One upstream call's verdict; `tokens` is the answer's usage.total_tokens (0 when unknown). */
  outcome: { at: number; provider: string; keyId: string; kind: string; status: number; latencyMs: number };
  /**
   * What a call used, from its `usage`: with its success, or, for a stream, when its last chunk
   * arrives. `cost` is `usage.cost` in USD (0 when the upstream sent none); `client` is who the
   * request was for (requestClient.ts's fairKey), when known.
   */
  usage: { at: number; provider: string; keyId: string; tokens: number; cost: number; client?: string };
}

export class PoolEmitter {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(50);
  }

  on<E extends keyof PoolEvents>(event: E, listener: (payload: PoolEvents[E]) => void): () => void {
    this.emitter.on(event, listener);
    return () => this.emitter.off(event, listener);
  }

  emit<E extends keyof PoolEvents>(event: E, payload: PoolEvents[E]): void {
    if (this.emitter.listenerCount(event) > 0) this.emitter.emit(event, payload);
  }
}
