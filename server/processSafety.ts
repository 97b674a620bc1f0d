import type { EventEmitter } from 'node:events';
import type { Logger } from './logger';

export interface SafetyOptions {
  /** Ends the process (process.exit; tests record the call). */
  exit?: (code: number) => void;
  /** Where 'unhandledRejection' and 'uncaughtException' come from (the process; tests emit them). */
  events?: EventEmitter;
}

/**
 * An unhandled rejection is logged and counted (the count on /status and the metrics makes the bug
 * visible) and the server goes on: the promise's work is lost, not the process's state. An uncaught
 * exception is different: it left some operation half done, so continuing is not safe (SPEC §7).
 * It is logged and the process exits non-zero; a supervisor restarts it, and the rotation state
 * survives in the snapshot or in Redis.
 */
export function installProcessSafety(logger: Logger, count: () => void, opts: SafetyOptions = {}): void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const events = opts.events ?? process;
  const describe = (err: unknown) => ({ error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
  events.on('unhandledRejection', (err) => {
    count();
    logger.error('unhandled rejection', describe(err));
  });
  events.on('uncaughtException', (err) => {
    count();
    logger.error('uncaught exception', { ...describe(err), exiting: true });
    exit(1);
  });
}
