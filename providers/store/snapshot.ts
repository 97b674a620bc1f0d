import { mkdirSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MemoryStore, type MemoryState } from './memory';
import type { StateSection, StoreHealth } from './types';

/** What a store may say about itself; the app's logger fits. */
export interface StoreLog {
  info(message: string, meta?: Record<string, unknown>): unknown;
  warn(message: string, meta?: Record<string, unknown>): unknown;
}

const FORMAT = 'orche-state';
const VERSION = 1;

/** The file: a marker and a version, so that a foreign or future file is recognised and left alone. */
interface SnapshotFile {
  format: typeof FORMAT;
  version: typeof VERSION;
  saved_at: number;
  state: MemoryState;
  sections: Record<string, unknown>;
}

export interface SnapshotOptions {
  logger: StoreLog;
  now?: () => number;
  /** How long after a change the file is written; changes meanwhile share the write. */
  delayMs?: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why a parsed file is not ours to load, or null when it is. */
function rejectReason(data: unknown): string | null {
  if (!isRecord(data) || data.format !== FORMAT) return `not an orche state file (no "format":"${FORMAT}")`;
  if (data.version !== VERSION) return `format version ${String(data.version)}, this orche reads version ${VERSION}`;
  const state = data.state;
  if (!isRecord(state)) return 'no state section';
  for (const part of ['gates', 'disabled', 'strikes', 'aliases', 'counters', 'positions']) {
    if (!isRecord(state[part])) return `state.${part} is missing or not an object`;
  }
  if (data.sections !== undefined && !isRecord(data.sections)) return 'sections is not an object';
  return null;
}

/**
 * The memory store, saved to a file: read at start, written atomically (temp file + rename) shortly
 * after each change and at close. A write never happens on the request path: a change only arms a timer.
 */
export class SnapshotStore extends MemoryStore {
  override readonly kind: StoreHealth['kind'] = 'file';
  private readonly now: () => number;
  private readonly delayMs: number;
  private readonly logger: StoreLog;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private closed = false;
  private lastError: string | undefined;
  /** Saved sections waiting for their owner to attach. */
  private savedSections: Record<string, unknown> = {};

  constructor(
    readonly path: string,
    opts: SnapshotOptions,
  ) {
    super();
    this.logger = opts.logger;
    this.now = opts.now ?? Date.now;
    this.delayMs = opts.delayMs ?? 200;
    this.load();
  }

  private load(): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.logger.warn('state snapshot unreadable, starting with empty state', { path: this.path, error: (err as Error).message });
      return;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      this.logger.warn('state snapshot is corrupt (not JSON), ignored; it will be overwritten', { path: this.path, error: (err as Error).message });
      return;
    }
    const reason = rejectReason(data);
    if (reason) {
      this.logger.warn('state snapshot ignored; it will be overwritten', { path: this.path, reason });
      return;
    }
    const file = data as SnapshotFile;
    this.importState(file.state, typeof file.saved_at === 'number' ? file.saved_at : this.now());
    this.savedSections = { ...(file.sections ?? {}) };
    this.logger.info('state restored from snapshot', { path: this.path, saved_at: new Date(file.saved_at).toISOString() });
  }

  override attach(name: string, section: StateSection): () => void {
    const markChanged = super.attach(name, section);
    if (name in this.savedSections) {
      section.restore(this.savedSections[name]);
      delete this.savedSections[name];
    }
    return markChanged;
  }

  protected override changed(): void {
    this.dirty = true;
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.delayMs);
    this.timer.unref();
  }

  /** Writes the state now if it changed; one write at a time, a change during a write writes again. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
    if (!this.dirty) return;
    this.dirty = false;
    this.writing = this.write().finally(() => (this.writing = undefined));
    await this.writing;
  }

  private async write(): Promise<void> {
    const sections: Record<string, unknown> = { ...this.savedSections };
    for (const [name, s] of this.sections) sections[name] = s.save();
    const file: SnapshotFile = { format: FORMAT, version: VERSION, saved_at: this.now(), state: this.exportState(this.now()), sections };
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      await writeFile(tmp, JSON.stringify(file));
      await rename(tmp, this.path);
      if (this.lastError) this.logger.info('state snapshot written again', { path: this.path });
      this.lastError = undefined;
    } catch (err) {
      const message = (err as Error).message;
      // One line per kind of failure, not one per change.
      if (message !== this.lastError) this.logger.warn('state snapshot could not be written', { path: this.path, error: message });
      this.lastError = message;
      this.dirty = true;
    }
  }

  /** A failing write is reported but keeps the store ok: it still serves every request from memory. */
  override health(): StoreHealth {
    return this.lastError ? { kind: this.kind, ok: true, detail: `cannot write ${this.path}: ${this.lastError}` } : { kind: this.kind, ok: true };
  }

  override async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty = true;
    await this.flush();
  }
}
