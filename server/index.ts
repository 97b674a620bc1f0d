import { ConfigError, loadConfig } from '../config';
import { createApp } from './app';
import { installProcessSafety } from './processSafety';

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
  const orche = createApp(config);
  installProcessSafety(orche.ctx.logger, () => orche.ctx.processErrors++);
  const { url } = await orche.listen();
  orche.ctx.logger.info('orche listening', { url, providers: config.providers.filter((p) => p.keys.length > 0).map((p) => p.slug) });
  void orche.checkModels();
  const stop = async (signal: string) => {
    orche.ctx.logger.info('shutting down', { signal });
    await orche.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

void main();
