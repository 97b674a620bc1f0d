import type { PoolEmitter, PoolEvents } from './events';

export type RotationRecord = PoolEvents['rotated'];

/** The last `capacity` rotations, oldest dropped first; per-provider counts since start. */
export class RotationHistory {
  private readonly records: RotationRecord[] = [];
  private readonly counts = new Map<string, number>();

  constructor(events: PoolEmitter, private readonly capacity = 500) {
    events.on('rotated', (r) => this.add(r));
  }

  private add(r: RotationRecord): void {
    this.records.push(r);
    if (this.records.length > this.capacity) this.records.splice(0, this.records.length - this.capacity);
    this.counts.set(r.provider, (this.counts.get(r.provider) ?? 0) + 1);
  }

  /** Newest first. */
  list(provider?: string, limit = 50): RotationRecord[] {
    const out: RotationRecord[] = [];
    for (let i = this.records.length - 1; i >= 0 && out.length < limit; i--) {
      const r = this.records[i];
      if (!provider || r.provider === provider) out.push(r);
    }
    return out;
  }

  count(provider: string): number {
    return this.counts.get(provider) ?? 0;
  }

  last(provider: string): RotationRecord | null {
    return this.list(provider, 1)[0] ?? null;
  }
}
