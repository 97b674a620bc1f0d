import { mkdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { MemoryStore, type MemoryState } from './memory';
import { healState, isTime } from './snapshotShape';
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

/** Why a parsed file is not ours to load at all, or null when it is (its entries are checked one by one: snapshotShape.ts). */
function rejectReason(data: unknown): string | null {
  if (!isRecord(data) || data.format !== FORMAT) return `not an orche state file (no "format":"${FORMAT}")`;
  if (data.version !== VERSION) return `format version ${String(data.version).slice(0, 20)}, this orche reads version ${VERSION}`;
  if (!isRecord(data.state)) return 'no state section';
  return null;
}

/** Names listed in the one warning about a healed file; the count says how many there were. */
const MAX_NAMED = 20;

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
    } catch {
      this.moveAside();
      return;
    }
    const reason = rejectReason(data);
    if (reason) {
      this.logger.warn('state snapshot ignored; it will be overwritten', { path: this.path, reason });
      return;
    }
    const file = data as Record<string, unknown> & { state: Record<string, unknown> };
    const { state, dropped } = healState(file.state);
    const savedAt = isTime(file.saved_at) ? file.saved_at : undefined;
    if (savedAt === undefined) dropped.unshift('saved_at');
    if (file.sections !== undefined && !isRecord(file.sections)) dropped.push('sections');
    this.importState(state, savedAt ?? this.now());
    this.savedSections = isRecord(file.sections) ? { ...file.sections } : {};
    const saved_at = savedAt === undefined ? null : new Date(savedAt).toISOString();
    if (dropped.length === 0) {
      this.logger.info('state restored from snapshot', { path: this.path, saved_at });
      return;
    }
    // One line for the whole file, naming what was dropped; the rewrite leaves a file that loads clean.
    this.logger.warn('state snapshot: malformed entries ignored and dropped; the rest is restored and the file rewritten', {
      path: this.path,
      saved_at,
      dropped: dropped.slice(0, MAX_NAMED),
      count: dropped.length,
    });
    this.changed();
  }

  /**
   * A file that is not JSON is kept for whoever wants to look (`<path>.corrupt-<time>`) and orche
   * starts empty. Never logged: its text may be anything, and a parse error quotes it.
   */
  private moveAside(): void {
    const aside = `${this.path}.corrupt-${this.now()}`;
    try {
      renameSync(this.path, aside);
      this.logger.warn('state snapshot is corrupt (not JSON): moved aside, starting with empty state', { path: this.path, moved_to: aside });
    } catch (err) {
      this.logger.warn('state snapshot is corrupt (not JSON) and could not be moved aside: ignored, it will be overwritten', { path: this.path, error: (err as NodeJS.ErrnoException).code ?? 'unknown' });
    }
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
    // Never through a link (docs/design.md#snapshot-healing): a fresh unguessable temp name, created exclusively (O_EXCL fails
    // on any existing name, a planted link included), readable by orche's user only; the rename then
    // replaces the file's name itself. A folder orche creates is private too.
    const tmp = `${this.path}.${randomBytes(8).toString('hex')}.tmp`;
    let created = false;
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'wx', 0o600);
      created = true;
      try {
        await fh.writeFile(JSON.stringify(file));
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      created = false;
      if (this.lastError) this.logger.info('state snapshot written again', { path: this.path });
      this.lastError = undefined;
    } catch (err) {
      if (created) await unlink(tmp).catch(() => undefined);
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
