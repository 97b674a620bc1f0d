import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { Duplex, Writable } from 'node:stream';
import express, { type Express, type Router } from 'express';
import type { Config } from '../config';
import { errorBody, OrcheError } from '../providers/errors';
import { sleep as realSleep } from '../providers/dispatch/backoff';
import { ChatService } from '../providers/dispatch/chat';
import type { DispatchDeps } from '../providers/dispatch/dispatcher';
import { realClock } from '../providers/dispatch/waitRoom';
import { EndUsers, requestScope } from './limits/endUsers';
import { userLimitRedis } from './limits/userLimitRedis';
import { KeyPool } from '../providers/keys/keyPool';
import { KeyProber, type ProbeSummary } from '../providers/keys/keyProbe';
import { OpenRouterClient } from '../providers/upstream/openrouterClient';
import { RotationHistory } from '../providers/keys/rotationHistory';
import { createStore } from '../providers/store';
import { RedisStore } from '../providers/store/redis';
import { sharedRedis } from '../providers/store/redisConnection';
import { REDIS_KIND } from '../providers/store/names';
import type { StateStore } from '../providers/store/types';
import { Alerts } from './observe/alerts';
import type { AppContext } from './context';
import { dashboardRoutes } from './observe/dashboard';
import { clientLimitRedis } from './limits/clientLimitStore';
import { streamLimit } from './limits/clientStreams';
import { type ConnectionCount, defaultMaxConnections, fileLimit, guardConnections, serverOptions } from './http/connections';
import { methodNotAllowed, singleQueryValues } from './http/requestShape';
import { jsonBody } from './http/jsonBody';
import { forPaths, series } from './http/series';
import { safeOrigin } from './lifecycle/exposure';
import { createLogger, type Logger } from './observe/logger';
import { Metrics } from './observe/metrics';
import { clientAuth } from './auth/guards';
import { errorHandler, notFound } from './http/errors';
import { requestId, requestLog } from './http/requestLog';
import { applyReload, type ReloadReport } from './lifecycle/reload';
import { adminRoutes } from './routes/admin';
import { chatRoutes } from './routes/chat';
import { opsRoutes } from './routes/ops';
import { statusRoutes } from './routes/status';
import { v1Routes } from './routes/v1';
import { clientLimiter } from './limits/clientLimiter';
import { corsPolicy, securityHeaders } from './http/headers';
import { STATUS_PATHS, statusAuth } from './auth/guards';
import { drainServer, InFlight } from './lifecycle/shutdown';
import { UsageTracker } from './observe/usage';

import { version as VERSION } from '../package.json';

export interface AppDeps {
  now?: () => number;
  random?: () => number;
  sleep?: DispatchDeps['sleep'];
  store?: StateStore;
  logger?: Logger;
  /** Where log lines go when no logger is given (tests read them). */
  logStream?: Writable;
  /** Reads the configuration again for a hot reload (server/index.ts: the environment file); without it reload is unavailable. */
  loadConfig?: () => Config;
}

export interface OrcheApp {
  app: Express;
  ctx: AppContext;
  /** The start-up check of configured slugs against the upstream's /models; never throws. */
  checkModels(): Promise<void>;
  /** Probes every key once (awaited), then every ORCHE_PROBE_INTERVAL_MS; nothing when that is 0. */
  start(): Promise<void>;
  /** One probe of every key now (tests call it instead of waiting for the interval). */
  probeNow(): Promise<ProbeSummary>;
  /** Hot reload of provider/key/budget settings; throws ConfigError and keeps the running config on a bad file. */
  reload(): ReloadReport;
  listen(port?: number, host?: string): Promise<{ server: Server; port: number; url: string }>;
  /** Graceful stop: no new connections, requests in flight get up to `graceMs`, then the rest is cut and the store closed. */
  shutdown(graceMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** What Node's HTTP parser rejects, in the error shape: too large headers, requests not received in time, bad HTTP. */
function parserRejection(err: NodeJS.ErrnoException): { status: number; reason: string; type: string; message: string } {
  if (err.code === 'HPE_HEADER_OVERFLOW') return { status: 431, reason: 'Request Header Fields Too Large', type: 'headers_too_large', message: 'Request headers are too large' };
  // ORCHE_HEADERS_TIMEOUT_MS or ORCHE_BODY_TIMEOUT_MS passed (Node names both so); Node's own answer is a 408 too.
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, reason: 'Request Timeout', type: 'request_timeout', message: 'The request was not received in time' };
  return { status: 400, reason: 'Bad Request', type: 'bad_http_request', message: 'The request is not valid HTTP' };
}

/** Requests Node's HTTP parser rejects still get the error shape, not a bare 400. */
function answerMalformed(err: NodeJS.ErrnoException, socket: Duplex): void {
  // Nothing is written into an answer already under way (a response whose head went out).
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const r = parserRejection(err);
  const body = JSON.stringify(errorBody(new OrcheError(r.status, r.type, r.message)));
  socket.end(
    `HTTP/1.1 ${r.status} ${r.reason}\r\nContent-Type: application/json\r\nX-Request-Id: ${randomUUID()}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The routes that spend keys: client tokens and per-client limits apply here. */
const CHAT_PATHS = ['/api/chat', '/v1/chat'];

function subscribeLogs(pool: KeyPool, logger: Logger): void {
  const iso = (t: number) => new Date(t).toISOString();
  pool.events.on('rotated', (e) => logger.info('rotation', { provider: e.provider, from: e.from, to: e.to, reason: e.reason }));
  pool.events.on('limit_learned', (e) => logger.info('limit learned', { provider: e.provider, key_id: e.keyId, scope: e.scope, limit: e.limit, window_ms: e.windowMs }));
  pool.events.on('cooled', (e) => logger.info('key cooling', { provider: e.provider, key_id: e.keyId, scope: e.scope, until: iso(e.until), reason: e.reason }));
  pool.events.on('disabled', (e) => logger.warn('key disabled', { provider: e.provider, key_id: e.keyId, reason: e.reason }));
  pool.events.on('recovered', (e) => logger.info('key recovered', { provider: e.provider, key_id: e.keyId }));
  pool.events.on('congested', (e) => logger.info('model congested upstream', { provider: e.provider, model: e.model, until: iso(e.until), reason: e.reason }));
  pool.events.on('edge', (e) => logger.warn('upstream edge rate-limits this host: every provider waits', { provider: e.provider, key_id: e.keyId, until: iso(e.until), reason: e.reason }));
  pool.events.on('account_learned', (e) => logger.info('account learned', { key_id: e.keyId, account: e.account }));
  pool.events.on('key_expiring', (e) => logger.warn('key expires within a day', { key_id: e.keyId, providers: e.providers, expires_at: new Date(e.expiresAt).toISOString() }));
  pool.events.on('reactivated', (e) => logger.info('key reactivated', { key_id: e.keyId }));
}

/** How long a start with ORCHE_REDIS_REQUIRED=true waits for Redis. */
const REDIS_REQUIRED_WAIT_MS = 5000;

/** The composition root: everything is built here from a parsed config; no module-level state. */
export function createApp(config: Config, deps: AppDeps = {}): OrcheApp {
  const now = deps.now ?? Date.now;
  const logger = deps.logger ?? createLogger({ ...config.log, stream: deps.logStream });
  const store = deps.store ?? createStore(config, logger, now);
  const pool = new KeyPool(config.providers, store, KeyPool.optionsFrom(config));
  const client = new OpenRouterClient(config.upstream);
  const chat = new ChatService(pool, client, config.rotation, {
    now,
    sleep: deps.sleep ?? realSleep,
    random: deps.random ?? Math.random,
    // Real, cancellable timers for the wait rooms unless a test drives time through its own sleep.
    timers: deps.sleep ? undefined : realClock,
    maxQueue: config.pacing.maxQueue,
    minuteMs: config.pacing.minuteMs,
  });
  const history = new RotationHistory(pool.events);
  subscribeLogs(pool, logger);
  const metrics = new Metrics(pool, now);
  const usage = new UsageTracker(pool.events);
  const endUsers = new EndUsers({ rpm: config.pacing.userRpm, rpd: config.pacing.userRpd });
  const prober = new KeyProber(pool, client, now);
  const alerts = config.ops.alertWebhook
    ? new Alerts(pool, { webhook: config.ops.alertWebhook, intervalMs: config.ops.alertIntervalMs }, logger, now)
    : undefined;
  const inflight = new InFlight();

  const logProbe = (s: ProbeSummary) => {
    if (s.disabled.length || s.reactivated.length || s.failed.length) logger.info('keys probed', { probed: s.probed, disabled: s.disabled, reactivated: s.reactivated, failed: s.failed });
  };
  const probeNow = () => prober.probeNow().then((s) => (logProbe(s), s));
  /** Background work (probes, the model check) started without a caller to await it: failures are logged. */
  const background = (what: string) => (err: unknown) => logger.error(`${what} failed`, { error: err instanceof Error ? err.message : String(err) });

  const checkModels = async () => {
    const listed = await client.listModels();
    if (!listed) {
      logger.warn('model check skipped: the upstream /models did not answer', { base_url: safeOrigin(config.upstream.baseUrl) });
      return;
    }
    const missing = [...new Set(ctx.config.providers.filter((p) => p.keys.length > 0).map((p) => p.model))].filter((m) => !listed.includes(m));
    ctx.modelCheck = { checked: true, missing };
    for (const m of missing) logger.warn('configured model is not listed upstream', { model: m });
  };

  const reload = (): ReloadReport => {
    if (!deps.loadConfig) throw new OrcheError(501, 'reload_unavailable', 'This instance was not started from an environment file; restart it to change its configuration');
    const report = applyReload(ctx, deps.loadConfig());
    logger.info('configuration reloaded', {
      providers: report.providers.filter((p) => p.added.length || p.removed.length),
      restart_required: report.restart_required,
    });
    if (config.ops.probeIntervalMs > 0) probeNow().catch(background('key probe'));
    // Models may have changed with the providers: check them again, as at start.
    checkModels().catch(background('model check'));
    return report;
  };

  // Per-client and per-end-user limits are shared across instances through Redis when there is one, on one connection.
  const { userRpm, userRpd } = config.pacing;
  const limitsRedis = config.redis && (config.clientRpm || userRpm || userRpd) ? sharedRedis(config.redis.url, `${config.redis.prefix}limits`) : undefined;
  const prefix = config.redis?.prefix ?? '';
  const limiter = clientLimiter(config, limitsRedis && config.clientRpm ? clientLimitRedis(limitsRedis, `${prefix}${REDIS_KIND.clientLimit}`) : undefined, logger);
  const streams = streamLimit(config.maxStreamsPerClient, config.clientTokens);
  const userLimit = limitsRedis && (userRpm || userRpd) ? userLimitRedis(limitsRedis, `${prefix}${REDIS_KIND.userLimit}`, { rpm: userRpm, rpd: userRpd }) : undefined;

  const ctx: AppContext = {
    config,
    pool,
    chat,
    history,
    logger,
    now,
    startedAt: now(),
    version: VERSION,
    modelCheck: { checked: false, missing: [] },
    processErrors: 0,
    metrics,
    usage,
    endUsers,
    prober,
    reload,
    // The middleware counted one request and one stream; a fan-out's route adds its other legs.
    async chargeLegs(req, res, legs) {
      await limiter.chargeMore(req, legs - 1);
      streams.holdMore(res, legs - 1);
    },
  };

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.set('trust proxy', config.trustProxy);
  // Every middleware runs in one router layer (server/http/series.ts), in this order; those for some paths only say which.
  app.use(
    series(
      inflight.middleware,
      requestId,
      requestLog(logger, now),
      metrics.middleware(now),
      securityHeaders,
      corsPolicy(config.corsOrigins),
      methodNotAllowed(app),
      forPaths(STATUS_PATHS, statusAuth(config)),
      forPaths(CHAT_PATHS, series(clientAuth(config.clientTokens, config.trustProxy), limiter.middleware)),
      singleQueryValues,
      jsonBody(config.bodyLimit),
      forPaths(CHAT_PATHS, series(streams.middleware, requestScope(config, endUsers, now, userLimit))),
    ),
  );
  // The OpenAI-compatible routes first: the busiest, and no path of theirs is another router's.
  // Each module registers its routes on the app's own router: a router of its own would be one more layer per request.
  const routes = (app as unknown as { router: Router }).router;
  v1Routes(ctx, routes);
  statusRoutes(ctx, routes);
  chatRoutes(ctx, routes);
  adminRoutes(ctx, routes);
  opsRoutes(ctx, routes);
  dashboardRoutes(routes);
  app.use(notFound);
  app.use(errorHandler(logger));

  let server: Server | undefined;
  let connectionCount: (() => ConnectionCount) | undefined;
  ctx.connections = () => connectionCount?.();
  const stopTimers = () => {
    prober.stop();
    alerts?.stop();
  };
  /** Everything but the server, for both ways of stopping: timers, upstream sockets, Redis, the store (its last snapshot). */
  const closeResources = async () => {
    stopTimers();
    client.close();
    limitsRedis?.disconnect();
    await store.close();
  };

  return {
    app,
    ctx,
    async start() {
      // A deployment that requires its shared state fails to start without it (docs/design.md#start-up-checks), rather
      // than serving from a local state no other instance sees.
      if (config.redis?.required && store instanceof RedisStore && !(await store.connected(REDIS_REQUIRED_WAIT_MS))) {
        throw new Error(`redis at ${safeOrigin(config.redis.url)} did not answer within ${REDIS_REQUIRED_WAIT_MS / 1000} s (ORCHE_REDIS_REQUIRED=true)`);
      }
      if (config.ops.probeIntervalMs <= 0) return;
      await probeNow();
      prober.schedule(config.ops.probeIntervalMs, logProbe, background('key probe'));
    },
    probeNow,
    reload,
    checkModels,
    listen(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        const bounds = config.connections;
        const limit = fileLimit();
        const max = bounds.maxConnections ?? defaultMaxConnections(limit);
        // A cap at the file limit caps nothing: the files run out first (docs/design.md#connections).
        if (limit !== undefined && max >= limit) logger.warn('ORCHE_MAX_CONNECTIONS is not below the file limit: new connections will fail when the files run out', { max_connections: max, file_limit: limit });
        const s = createServer(serverOptions(bounds), app);
        const count = guardConnections(s, max);
        s.on('clientError', answerMalformed);
        s.once('error', reject);
        s.listen(port, host);
        s.once('listening', () => {
          server = s;
          connectionCount = count;
          logger.info('connection bounds', {
            headers_timeout_ms: bounds.headersTimeoutMs,
            request_timeout_ms: bounds.requestTimeoutMs,
            keepalive_timeout_ms: bounds.keepAliveTimeoutMs,
            max_connections: max,
            file_limit: limit === Infinity ? 'unlimited' : (limit ?? null),
          });
          const actual = (s.address() as AddressInfo).port;
          resolve({ server: s, port: actual, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${actual}` });
        });
      });
    },
    async shutdown(graceMs = config.ops.shutdownGraceMs) {
      stopTimers(); // first, so that no probe or alert starts while requests drain
      if (server) {
        const cut = await drainServer(server, inflight, graceMs);
        if (cut > 0) logger.warn('shutdown deadline reached: requests cut', { cut, grace_ms: graceMs });
        server = undefined;
      }
      await closeResources();
    },
    async close() {
      if (server) {
        const s = server;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        });
      }
      await closeResources();
    },
  };
}
