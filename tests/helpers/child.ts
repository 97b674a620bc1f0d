import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { TEST_ENV } from './stack';

const ENTRY = resolve(__dirname, '../../dist/server/index.js');

/** `node dist/server/index.js` in a temp dir holding orche.env: the real entry point, signals and all. */
export interface OrcheProcess {
  readonly dir: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** Every JSON log line so far, parsed (non-JSON lines as {message}). */
  readonly lines: Array<Record<string, unknown>>;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  writeEnv(text: string): void;
  signal(sig: NodeJS.Signals): void;
  waitForLine(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a signal and waits for the process to end. */
  stop(sig?: NodeJS.Signals): Promise<number | null>;
  /** Kills the process if it still runs and removes the temp dir. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** The limit of open files of the orche process (`ulimit -n`, soft and hard: node raises its soft limit to the hard one at start), set in a shell that then execs node. */
  fileLimit?: number;
}

export async function startOrcheProcess(envFile: string, env: Record<string, string>, opts: LaunchOptions = {}): Promise<OrcheProcess> {
  const proc = launchOrche(envFile, env, opts);
  try {
    const listening = await proc.waitForLine((l) => l.message === 'orche listening', 10_000);
    return { ...proc, url: String(listening.url) };
  } catch (err) {
    await proc.close();
    throw err;
  }
}

/** The process, started, without waiting for it to listen (start-up failure tests). */
export function launchOrche(envFile: string, env: Record<string, string>, opts: LaunchOptions = {}): OrcheProcess {
  if (!existsSync(ENTRY)) throw new Error(`${ENTRY} is missing: run \`npm run build\` first (\`npm test\` does)`);
  const dir = mkdtempSync(join(tmpdir(), 'orche-child-'));
  writeFileSync(join(dir, 'orche.env'), envFile);
  const [command, args]: [string, string[]] =
    opts.fileLimit === undefined ? [process.execPath, [ENTRY]] : ['bash', ['-c', `ulimit -n ${opts.fileLimit} && exec "$0" "$1"`, process.execPath, ENTRY]];
  const child = spawn(command, args, {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const listeners = new Set<() => void>();
  let buffered = '';
  const onData = (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line) continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ message: line });
      }
      for (const l of listeners) l();
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => {
    for (const l of listeners) l();
    res(code);
  }));

  const waitForLine = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 5000) =>
    new Promise<Record<string, unknown>>((res, rej) => {
      const check = () => {
        const found = lines.find(pred);
        if (found) return finish(() => res(found));
        if (child.exitCode !== null || child.signalCode !== null) finish(() => rej(new Error(`orche exited (${child.exitCode}); output:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`)));
      };
      const timer = setTimeout(() => finish(() => rej(new Error(`no matching log line within ${timeoutMs} ms; output:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`))), timeoutMs);
      const finish = (f: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        f();
      };
      listeners.add(check);
      check();
    });

  const proc: OrcheProcess = {
    dir,
    url: '',
    child,
    lines,
    exited,
    writeEnv: (text) => writeFileSync(join(dir, 'orche.env'), text),
    signal: (sig) => void child.kill(sig),
    async stop(sig = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      return exited;
    },
    waitForLine,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return proc;
}

/** orche as `npm start` runs it, configured by the environment only (an empty orche.env), with the tests' quick defaults. */
export function spawnOrche(env: Record<string, string>, opts: LaunchOptions = {}): Promise<OrcheProcess> {
  return startOrcheProcess('', { ...(TEST_ENV as Record<string, string>), ...env }, opts);
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

/** Polls `fn` every 20 ms until it returns a truthy value, or fails after `timeoutMs`. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
