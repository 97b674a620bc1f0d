import type { Writable } from 'node:stream';
import winston from 'winston';
import { maskKeyShaped, REDACTED } from '../../providers/upstream/mask';

/** A log line is no chat answer: any Bearer credential in it is masked, however short. */
const ANY_BEARER = /(Bearer\s+)(?!\[REDACTED\])[^\s"',]+/g;

/**
 * Defence in depth: keys are never passed to the logger, and anything shaped like one is masked
 * anyway, by the pattern answers are masked by, so that a log line never carries a key shape an answer can't.
 */
export function scrub(text: string): string {
  return maskKeyShaped(text).replace(ANY_BEARER, `$1${REDACTED}`);
}

const scrubFormat = winston.format((info) => {
  for (const [k, v] of Object.entries(info)) if (typeof v === 'string') (info as Record<string, unknown>)[k] = scrub(v);
  return info;
});

export interface LoggerOptions {
  level: string;
  format: 'json' | 'pretty';
  /** Where lines go; stdout by default. Tests pass a stream to read every line. */
  stream?: Writable;
}

export type Logger = winston.Logger;

export function createLogger(opts: LoggerOptions): Logger {
  const silent = opts.level === 'silent';
  const format =
    opts.format === 'pretty'
      ? winston.format.combine(scrubFormat(), winston.format.timestamp(), winston.format.colorize(), winston.format.printf((i) => {
          const { level, message, timestamp, ...rest } = i;
          const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
          return `${timestamp} ${level} ${message}${extra}`;
        }))
      : winston.format.combine(scrubFormat(), winston.format.timestamp(), winston.format.json());
  return winston.createLogger({
    level: silent ? 'error' : opts.level,
    silent,
    format,
    transports: [opts.stream ? new winston.transports.Stream({ stream: opts.stream }) : new winston.transports.Console()],
  });
}
