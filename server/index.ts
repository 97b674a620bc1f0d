import { ConfigError, loadConfig } from '../config';
import { createApp } from './app';
import { warnExposure } from './lifecycle/exposure';
import { installProcessSafety } from './lifecycle/processSafety';

/** A start-up failure with a message meant for the operator as it is. */
class StartError extends Error {}

/** The entry point: read the environment, build the app, listen, handle signals. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`orche: configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const orche = createApp(config, { loadConfig: () => loadConfig() });
  const log = orche.ctx.logger;
  warnExposure(config, log);
  installProcessSafety(log, () => orche.ctx.processErrors++);
  // Keys the upstream rejects are disabled before the first request can reach them.
  await orche.start();
  const { url } = await orche.listen().catch((err: NodeJS.ErrnoException) => {
    const why = err.code === 'EADDRINUSE' ? 'address already in use (EADDRINUSE)' : err.code === 'EACCES' ? 'permission denied (EACCES)' : err.message;
    throw new StartError(`cannot listen on ${config.host}:${config.port}: ${why}`);
  });
  log.info('orche listening', { url, providers: config.providers.filter((p) => p.keys.length > 0).map((p) => p.slug) });
  orche.checkModels().catch((err: unknown) => log.error('model check failed', { error: err instanceof Error ? err.message : String(err) }));

  process.on('SIGHUP', () => {
    try {
      orche.reload();
    } catch (err) {
      // The same message as at start-up; the running configuration stays.
      if (err instanceof ConfigError) log.error(`reload refused: configuration error: ${err.message}`, { error: err.message });
      else log.error('reload failed', { error: err instanceof Error ? err.message : String(err) });
    }
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log.warn('second signal: exiting at once', { signal });
      process.exit(1);
    }
    stopping = true;
    const graceMs = config.ops.shutdownGraceMs;
    log.info('shutting down', { signal, grace_ms: graceMs });
    try {
      await orche.shutdown(graceMs);
      log.info('shut down', { signal });
      process.exit(0);
    } catch (err) {
      log.error('shutdown failed', { error: err instanceof Error ? err.message : String(err) });
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

// A failed start exits non-zero at once with one line (docs/design.md#start-up-checks): never left to the rejection handler,
// which would keep a process up that does not listen (a Redis connection holds the event loop).
main().catch((err: unknown) => {
  console.error(`orche: failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
