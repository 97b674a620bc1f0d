import { Writable } from 'node:stream';
import request from 'supertest';
import { type Env, parseConfig } from '../../config';
import { keyId } from '../../providers/keys/keys';
import { createApp, type AppDeps, type OrcheApp } from '../../server/app';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../scripts/simulator';

/** Every log line orche writes, parsed; and the raw text for leak checks. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) this.lines.push(line);
    cb();
  }
  parsed(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l));
  }
}

export interface Stack {
  sim: Simulator;
  orche: OrcheApp;
  url: string;
  logs: LogCapture;
  http: ReturnType<typeof request>;
  close(): Promise<void>;
}

/** Quick, quiet defaults for tests; a test overrides what it is about. */
export const TEST_ENV: Env = {
  // Every scenario runs at debug level, and its log lines are searched for keys when it closes.
  LOG_LEVEL: 'debug',
  ORCHE_BACKOFF_BASE_MS: '5',
  ORCHE_BACKOFF_MAX_MS: '20',
  ORCHE_REQUEST_TIMEOUT_MS: '5000',
  // No GET /key probes unless a test is about them (they would disable unknown keys before a scenario).
  ORCHE_PROBE_INTERVAL_MS: '0',
};

/** A real simulator and a real orche on loopback, wired together. */
export async function startStack(env: Env, simOpts: SimulatorOptions = {}, deps: AppDeps = {}): Promise<Stack> {
  const sim = await startSimulator(simOpts);
  const logs = new LogCapture();
  const config = parseConfig({ ...TEST_ENV, OPENROUTER_BASE_URL: sim.baseUrl, PORT: '0', HOST: '127.0.0.1', ...env });
  const orche = createApp(config, { logStream: logs, ...deps });
  const { url } = await orche.listen(0, '127.0.0.1');
  return {
    sim,
    orche,
    url,
    logs,
    http: request(url),
    async close() {
      await orche.close();
      await sim.close();
      assertNoKeyIn(logs.lines, config.providers.flatMap((p) => p.keys.map((k) => k.key)));
    },
  };
}

/** docs/design.md#key-material-and-relayed-text: no key material in any log line at any level. Names the key by its id, never itself. */
export function assertNoKeyIn(lines: string[], keys: string[]): void {
  const text = lines.join('\n');
  for (const key of keys) {
    if (text.includes(key)) throw new Error(`a key (id ${keyId(key)}) appeared in orche's log lines`);
  }
}

export const hi = [{ role: 'user', content: 'hi' }];

/** Simulator calls made with one key, by key. */
export function callsBy(sim: Simulator, key: string) {
  return sim.calls.filter((c) => c.key === key);
}
