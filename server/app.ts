import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Writable } from 'node:stream';
import express, { type Express } from 'express';
import type { Config } from '../config';
import { sleep as realSleep } from '../providers/backoff';
import { ChatService } from '../providers/chat';
import type { DispatchDeps } from '../providers/dispatcher';
import { KeyPool } from '../providers/keyPool';
import { OpenRouterClient } from '../providers/openrouterClient';
import { RotationHistory } from '../providers/rotationHistory';
import { createStore } from '../providers/store';
import type { StateStore } from '../providers/store/types';
import type { AppContext } from './context';
import { createLogger, type Logger } from './logger';
import { errorHandler, notFound, requestId, requestLog } from './middleware';
import { adminRoutes } from './routes/admin';
import { chatRoutes } from './routes/chat';
import { statusRoutes } from './routes/status';

import { version as VERSION } from '../package.json';

export interface AppDeps {
  now?: () => number;
  random?: () => number;
  sleep?: DispatchDeps['sleep'];
  store?: StateStore;
  logger?: Logger;
  /** Where log lines go when no logger is given (tests read them). */
  logStream?: Writable;
}

export interface OrcheApp {
  app: Express;
  ctx: AppContext;
  /** The start-up check of configured slugs against the upstream's /models; never throws. */
  checkModels(): Promise<void>;
  listen(port?: number, host?: string): Promise<{ server: Server; port: number; url: string }>;
  close(): Promise<void>;
}

function subscribeLogs(pool: KeyPool, logger: Logger): void {
  const iso = (t: number) => new Date(t).toISOString();
  pool.events.on('rotated', (e) => logger.info('rotation', { provider: e.provider, from: e.from, to: e.to, reason: e.reason }));
  pool.events.on('cooled', (e) => logger.info('key cooling', { provider: e.provider, key_id: e.keyId, scope: e.scope, until: iso(e.until), reason: e.reason }));
  pool.events.on('disabled', (e) => logger.warn('key disabled', { provider: e.provider, key_id: e.keyId, reason: e.reason }));
  pool.events.on('recovered', (e) => logger.info('key recovered', { provider: e.provider, key_id: e.keyId }));
  pool.events.on('congested', (e) => logger.info('model congested upstream', { provider: e.provider, model: e.model, until: iso(e.until), reason: e.reason }));
  pool.events.on('account_learned', (e) => logger.info('account learned', { key_id: e.keyId, account: e.account }));
}

/** The composition root: everything is built here from a parsed config; no module-level state. */
export function createApp(config: Config, deps: AppDeps = {}): OrcheApp {
  const now = deps.now ?? Date.now;
  const logger = deps.logger ?? createLogger({ ...config.log, stream: deps.logStream });
  const store = deps.store ?? createStore(config, logger, now);
  const pool = new KeyPool(config.providers, store, KeyPool.optionsFrom(config));
  const client = new OpenRouterClient(config.upstream);
  const chat = new ChatService(pool, client, config.rotation, { now, sleep: deps.sleep ?? realSleep, random: deps.random ?? Math.random });
  const history = new RotationHistory(pool.events);
  subscribeLogs(pool, logger);

  const ctx: AppContext = { config, pool, chat, history, logger, now, startedAt: now(), version: VERSION, modelCheck: { checked: false, missing: [] } };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestId);
  app.use(requestLog(logger, now));
  app.use(express.json({ limit: config.bodyLimit }));
  app.use(statusRoutes(ctx));
  app.use(chatRoutes(ctx));
  app.use(adminRoutes(ctx));
  app.use(notFound);
  app.use(errorHandler(logger));

  let server: Server | undefined;

  return {
    app,
    ctx,
    async checkModels() {
      const listed = await client.listModels();
      if (!listed) {
        logger.warn('model check skipped: the upstream /models did not answer', { base_url: config.upstream.baseUrl });
        return;
      }
      const missing = [...new Set(config.providers.filter((p) => p.keys.length > 0).map((p) => p.model))].filter((m) => !listed.includes(m));
      ctx.modelCheck = { checked: true, missing };
      for (const m of missing) logger.warn('configured model is not listed upstream', { model: m });
    },
    listen(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        const s = app.listen(port, host);
        s.once('error', reject);
        s.once('listening', () => {
          server = s;
          // Upstream calls may take a minute; idle client sockets close sooner.
          s.keepAliveTimeout = 65_000;
          const actual = (s.address() as AddressInfo).port;
          resolve({ server: s, port: actual, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${actual}` });
        });
      });
    },
    async close() {
      if (server) {
        const s = server;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        });
      }
      client.close();
      await store.close();
    },
  };
}
