import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TEST_ENV } from './stack';

const ENTRY = resolve(__dirname, '../../dist/server/index.js');

export interface OrcheProcess {
  url: string;
  proc: ChildProcess;
  /** Every line the process printed. */
  output: string[];
  /** Sends a signal and waits for the process to end. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
    s.once('error', fail);
  });
}

function exited(proc: ChildProcess): Promise<void> {
  return new Promise((done) => (proc.exitCode !== null || proc.signalCode !== null ? done() : proc.once('exit', () => done())));
}

/**
 * `node dist/server/index.js` as a real process (what `npm start` runs), in an empty working
 * directory so no orche.env is read; resolves once it logs where it listens.
 */
export async function spawnOrche(env: Record<string, string>): Promise<OrcheProcess> {
  if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run \`npm run build\` (npm test does)`);
  const cwd = mkdtempSync(join(tmpdir(), 'orche-proc-'));
  const proc = spawn(process.execPath, [ENTRY], {
    cwd,
    env: { PATH: process.env.PATH ?? '', ...TEST_ENV, HOST: '127.0.0.1', PORT: '0', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`orche did not start in 10 s:\n${output.join('\n')}`)), 10_000);
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        output.push(line);
        try {
          const entry = JSON.parse(line) as { message?: string; url?: string };
          if (entry.message === 'orche listening' && entry.url) {
            clearTimeout(timer);
            done(entry.url);
          }
        } catch {
          // not a JSON log line
        }
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => output.push(c.toString('utf8')));
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`orche exited (${code ?? signal}) before listening:\n${output.join('\n')}`));
    });
  });
  return {
    url,
    proc,
    output,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited(proc);
    },
  };
}

/** Polls until `check` returns a value that is not undefined, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
