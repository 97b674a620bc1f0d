import { type ChildProcess, spawn } from 'node:child_process';
import { eventually } from './child';

/**
 * A private redis-server on its own port, for tests that stop and restart Redis (an outage). The
 * shared Redis at REDIS_URL is never stopped: other helpers and tests use it.
 */
export class RedisServer {
  private proc: ChildProcess | undefined;
  /** `dir`: keep the data across a stop (an append-only file synced on every write), as a real outage would. */
  constructor(
    readonly port: number,
    private readonly dir?: string,
  ) {}

  async start(): Promise<void> {
    const persistence = this.dir ? ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.dir] : ['--appendonly', 'no'];
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: 'ignore' });
    await eventually(
      async () =>
        new Promise<true | undefined>((done) => {
          const p = spawn('redis-cli', ['-p', String(this.port), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] });
          let out = '';
          p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          p.on('exit', () => done(out.includes('PONG') ? true : undefined));
        }),
      `redis-server on port ${this.port}`,
      5000,
    );
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((done) => {
      proc.once('exit', () => done());
      proc.kill('SIGKILL');
    });
  }
}
