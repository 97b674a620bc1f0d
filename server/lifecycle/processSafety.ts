import type { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import type { Logger } from '../observe/logger';

export interface SafetyOptions {
  /** Ends the process (process.exit; tests record the call). */
  exit?: (code: number) => void;
  /** Where 'unhandledRejection' and 'uncaughtException' come from (the process; tests emit them). */
  events?: EventEmitter;
  /** Where the logger's lines end up (stdout by default); each is flushed before the exit. */
  outputs?: Writable[];
  /** The longest the exit waits for the lines to be out (a stuck pipe must not keep a broken process alive). */
  flushTimeoutMs?: number;
}

/**
 * Calls `exit` once the logger's lines are out, or after `timeoutMs`, whichever comes first.
 * The logger hands its lines to its output when they are logged (stdout: written before the call
 * returns); an output that is a stream may still hold them, and an empty write to it calls back
 * once everything before it is through.
 */
export function exitWhenFlushed(logger: Logger, outputs: Writable[], timeoutMs: number, exit: () => void): void {
  let done = false;
  const go = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    exit();
  };
  const timer = setTimeout(go, timeoutMs);
  void new Promise<void>((r) => logger.flush(r))
    .then(() => Promise.all(outputs.map((o) => new Promise<void>((r) => o.write('', () => r())))))
    .then(go, go);
}

/**
 * An unhandled rejection is logged and counted (the count on /status and the metrics makes the bug
 * visible) and the server goes on: the promise's work is lost, not the process's state. An uncaught
 * exception is different: it left some operation half done, so continuing is not safe (docs/design.md#start-up-checks).
 * It is logged and, once that line is out, the process exits non-zero; a supervisor restarts it, and the rotation state
 * survives in the snapshot or in Redis.
 */
export function installProcessSafety(logger: Logger, count: () => void, opts: SafetyOptions = {}): void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const events = opts.events ?? process;
  const outputs = opts.outputs ?? [process.stdout];
  const describe = (err: unknown) => ({ error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
  let exiting = false;
  events.on('unhandledRejection', (err) => {
    count();
    if (exiting) return; // the exit is on its way
    logger.error('unhandled rejection', describe(err));
  });
  events.on('uncaughtException', (err) => {
    count();
    // A second one while the first line flushes: the exit is on its way.
    if (exiting) return;
    exiting = true;
    logger.error('uncaught exception', { ...describe(err), exiting: true });
    exitWhenFlushed(logger, outputs, opts.flushTimeoutMs ?? 2000, () => exit(1));
  });
}
