/**
 * A look-alike of OpenRouter's API on loopback, for the demo, tests, the rotation script and the benchmark.
 * Raw node:http and prebuilt strings: it must never be the bottleneck at ~10k req/s.
 * Run as a program: `node dist/scripts/simulator.js [--port 8787] [--latency ms] [--config options.json]`.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Core } from './simulator/call';
import { bearerToken, handleChat, readBody } from './simulator/chat';
import { type ControlTarget, handleControl, notFound, sendJson } from './simulator/control';
import { RuleBook } from './simulator/faults';
import { Registry } from './simulator/registry';
import { errorBody, modelsBody } from './simulator/responses';
import type { CallRecord, FaultRule, SimAccount, SimKey, Simulator, SimulatorOptions } from './simulator/types';

export type { CallRecord, FaultRule, FaultType, SimAccount, SimKey, Simulator, SimulatorOptions } from './simulator/types';

const BASE_MODELS = [
  'z-ai/glm-4.5',
  'openai/gpt-oss-120b',
  'meta-llama/llama-4-maverick',
  'moonshotai/kimi-k2',
  'qwen/qwen3-235b-a22b',
  'tngtech/deepseek-r1t2-chimera',
];
export const DEFAULT_MODELS: readonly string[] = [...BASE_MODELS, ...BASE_MODELS.map((m) => `${m}:free`)];

const API = '/api/v1';

class SimulatorServer implements Simulator, Core, ControlTarget {
  readonly calls: CallRecord[] = [];
  readonly registry: Registry;
  readonly rules = new RuleBook();
  readonly models: ReadonlySet<string>;
  readonly accountLimits: 'free' | 'all' | 'off';
  readonly retryAfter: boolean;
  readonly stream: Core['stream'];
  readonly now: () => number;
  latencyMs: number;
  closing = false;
  port = 0;
  private seq = 0;
  private inFlight = 0;
  private readonly maxCalls: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly gates = new Map<string, { open: Promise<void>; release: () => void }>();
  private readonly modelsJson: string;
  readonly server: Server;

  constructor(opts: SimulatorOptions) {
    this.now = opts.now ?? Date.now;
    this.registry = new Registry(opts.acceptAnyKey === true, opts.windowMs, opts.windowMode ?? 'aligned', this.now);
    for (const a of opts.accounts ?? []) this.registry.addAccount(a);
    for (const k of opts.keys ?? []) this.registry.addKey(k);
    const models = opts.models ?? DEFAULT_MODELS;
    this.models = new Set(models);
    this.modelsJson = modelsBody(models);
    this.accountLimits = opts.accountLimits ?? 'free';
    this.retryAfter = opts.retryAfter === true;
    this.stream = {
      chunks: opts.stream?.chunks ?? 5,
      chunkDelayMs: opts.stream?.chunkDelayMs ?? 0,
      processingComment: opts.stream?.processingComment ?? true,
      roleDelta: opts.stream?.roleDelta ?? false,
    };
    this.latencyMs = opts.latencyMs ?? 0;
    this.maxCalls = opts.maxCalls ?? 100_000;
    this.server = createServer((req, res) => this.route(req, res));
    this.server.keepAliveTimeout = 30_000;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}${API}`;
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path === `${API}/chat/completions` && req.method === 'POST') return handleChat(this, req, res);
    if (path === `${API}/models` && req.method === 'GET') return this.send(res, 200, this.modelsJson);
    if (path === `${API}/key` && req.method === 'GET') return this.keyInfo(req, res);
    if (path.startsWith('/_sim/')) return handleControl(this, path.slice(6), q < 0 ? '' : url.slice(q + 1), req, res);
    readBody(req, () => notFound(res));
  }

  private send(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  /**
   * GET /key in OpenRouter's current shape (API reference, openrouter.ai/docs/api/api-reference/api-keys/
   * get-current-key, 2026: creator_user_id, expires_at, the deprecated rate_limit with its note; live
   * answers add free_model_daily_requests {limit, remaining, used}, the account's :free UTC day).
   */
  private keyInfo(req: IncomingMessage, res: ServerResponse): void {
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) return this.send(res, 401, errorBody(401, 'No auth credentials found', undefined, undefined));
    const key = this.registry.resolve(token);
    if (key === undefined) return this.send(res, 401, errorBody(401, 'User not found.', undefined, undefined));
    if (key.revoked) return this.send(res, 401, errorBody(401, 'User not found.', undefined, key.account.id));
    const account = key.account;
    const used = account.counter.perDay(this.now());
    sendJson(res, 200, {
      data: {
        label: `sk-or-v1-…${token.slice(-3)}`,
        // The key's own credit limit only: the account's balance (`credits`) is not part of GET /key.
        limit: key.keyLimit?.limit ?? null,
        limit_remaining: key.keyLimit?.remaining ?? null,
        limit_reset: null,
        usage: key.keyLimit ? Math.max(0, key.keyLimit.limit - key.keyLimit.remaining) : 0,
        usage_daily: 0,
        usage_weekly: 0,
        usage_monthly: 0,
        byok_usage: 0,
        byok_usage_daily: 0,
        byok_usage_weekly: 0,
        byok_usage_monthly: 0,
        is_free_tier: !account.highBalance,
        is_management_key: false,
        is_provisioning_key: false,
        include_byok_in_limit: false,
        creator_user_id: account.id,
        expires_at: key.expiresAt,
        rate_limit: { ...key.rateLimit, note: 'This field is deprecated and safe to ignore.' },
        free_model_daily_requests: { limit: account.freeRpd, remaining: Math.max(0, account.freeRpd - used), used },
      },
    });
  }

  // Core

  nextSeq(): number {
    return ++this.seq;
  }

  enter(): number {
    return ++this.inFlight;
  }

  leave(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
  }

  record(rec: CallRecord): void {
    this.calls.push(rec);
    // Drop the oldest in batches so a long benchmark keeps bounded memory without O(n) work per call.
    if (this.calls.length > this.maxCalls + Math.max(1, this.maxCalls >> 3)) this.calls.splice(0, this.calls.length - this.maxCalls);
  }

  gate(name: string): Promise<void> {
    return this.gateNamed(name).open;
  }

  private gateNamed(name: string): { open: Promise<void>; release: () => void } {
    let g = this.gates.get(name);
    if (!g) {
      let release!: () => void;
      const open = new Promise<void>((resolve) => (release = resolve));
      g = { open, release };
      this.gates.set(name, g);
    }
    return g;
  }

  release(name = 'default'): void {
    this.gateNamed(name).release();
  }

  schedule(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  cancel(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  // Simulator and ControlTarget

  callsSince(seq: number): CallRecord[] {
    const first = this.calls.length === 0 ? seq + 1 : this.calls[0].seq;
    return this.calls.slice(Math.max(0, seq + 1 - first));
  }

  addKey(k: SimKey): void {
    this.registry.addKey(k);
  }

  updateKey(key: string, patch: Partial<SimKey>): void {
    this.registry.updateKey(key, patch);
  }

  addAccount(a: SimAccount): void {
    this.registry.addAccount(a);
  }

  addRule(rule: FaultRule): void {
    this.rules.add(rule);
  }

  clearRules(): void {
    this.rules.clear();
  }

  resetCounters(): void {
    this.registry.resetCounters();
  }

  reset(): void {
    this.calls.length = 0;
    this.rules.clear();
    this.registry.resetCounters();
  }

  setLatency(ms: number): void {
    this.latencyMs = Math.max(0, ms);
  }

  close(): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.closing = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const sim = new SimulatorServer(opts);
  await sim.listen(opts.port ?? 0);
  return sim;
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(args: string[]): Promise<void> {
  const configPath = argValue(args, '--config');
  const config = configPath === undefined ? {} : (JSON.parse(readFileSync(configPath, 'utf8')) as SimulatorOptions);
  const latency = argValue(args, '--latency');
  const sim = await startSimulator({
    acceptAnyKey: true,
    ...config,
    port: Number(argValue(args, '--port') ?? config.port ?? 8787),
    ...(latency === undefined ? {} : { latencyMs: Number(latency) }),
  });
  console.log(sim.baseUrl);
  const stop = (): void => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
