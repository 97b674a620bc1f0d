import { Writable } from 'node:stream';
import pino from 'pino';
import { maskKeyShaped, REDACTED } from '../../providers/upstream/mask';

/** A log line is no chat answer: any Bearer credential in it is masked, however short. */
// The line is JSON: an escaped backslash is part of the credential, an escaped quote ends it (and stays, so the line stays JSON).
const ANY_BEARER = /(Bearer\s+)(?!\[REDACTED\])(?:[^\s"',\\]|\\\\)+/g;

/**
 * Defence in depth: keys are never passed to the logger, and anything shaped like one is masked
 * anyway, by the pattern answers are masked by, so that a log line never carries a key shape an answer can't.
 */
export function scrub(text: string): string {
  return maskKeyShaped(text).replace(ANY_BEARER, `$1${REDACTED}`);
}

export interface LoggerOptions {
  /** One of LOG_LEVELS, or `silent`. */
  level: string;
  format: 'json' | 'pretty';
  /** Where lines go; stdout by default. Tests pass a stream to read every line. */
  stream?: Writable;
}

type Meta = Record<string, unknown>;

/** What orche logs with: a message and its fields, one JSON line each. */
export interface Logger {
  error(message: string, meta?: Meta): void;
  warn(message: string, meta?: Meta): void;
  info(message: string, meta?: Meta): void;
  debug(message: string, meta?: Meta): void;
  /** Calls back once every line logged so far has been handed to the output. */
  flush(done: () => void): void;
}

/** LOG_LEVEL's names, most severe first (npm's, as orche has always read them); a level logs itself and those before it. */
export const LOG_LEVELS = { error: 50, warn: 40, info: 30, http: 25, verbose: 20, debug: 15, silly: 10 } as const;

const COLOURS: Record<string, string> = { error: '31', warn: '33', info: '32' };

/** LOG_FORMAT=pretty: each JSON line as `timestamp level message {fields}`, for a terminal. */
function prettyTo(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        const { level, message, timestamp, ...rest } = JSON.parse(line) as Meta;
        const colour = COLOURS[String(level)] ?? '36';
        const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
        out.write(`${String(timestamp)} \x1b[${colour}m${String(level)}\x1b[39m ${String(message)}${extra}\n`);
      }
      done();
    },
  });
}

/**
 * pino, writing each line as it is logged (synchronously to stdout: a line is out before the call
 * returns, so a crash loses none). The line is built once and scrubbed whole. Issue 21 measured
 * winston's per-line formats and streams at ~35 µs of each request's CPU.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const out = opts.stream ?? (opts.format === 'pretty' ? prettyTo(process.stdout) : pino.destination({ dest: 1, sync: true }));
  const p = pino<keyof typeof LOG_LEVELS, true>(
    {
      level: opts.level,
      customLevels: LOG_LEVELS,
      useOnlyCustomLevels: true,
      base: undefined,
      messageKey: 'message',
      timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
      formatters: { level: (label) => ({ level: label }) },
      hooks: { streamWrite: scrub },
    },
    out,
  );
  const at = (level: keyof typeof LOG_LEVELS) => (message: string, meta?: Meta) => (meta ? p[level](meta, message) : p[level](message));
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    flush: (done) => p.flush(() => done()),
  };
}
