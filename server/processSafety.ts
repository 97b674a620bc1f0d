import type { Logger } from './logger';

/**
 * No unhandled rejection or exception stops the server: each is logged and counted. A bug that
 * reaches here is still a bug; the count on /status (and the metrics) makes it visible.
 */
export function installProcessSafety(logger: Logger, count: () => void): void {
  const report = (kind: string) => (err: unknown) => {
    count();
    logger.error(kind, { error: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined });
  };
  process.on('unhandledRejection', report('unhandled rejection'));
  process.on('uncaughtException', report('uncaught exception'));
}
