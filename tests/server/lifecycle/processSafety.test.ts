/**
 * An uncaught exception ends the process only after its log line is out: an output stream may
 * still hold it, so an exit right after logger.error may lose the one line that says why the process died.
 */
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { createLogger } from '../../../server/observe/logger';
import { installProcessSafety } from '../../../server/lifecycle/processSafety';

/** An output that takes a few milliseconds per write (a busy pipe): a line counts once it is through. */
function slowOutput(delayMs: number) {
  const through: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      setTimeout(() => {
        if (chunk.length) through.push(chunk.toString('utf8'));
        done();
      }, delayMs);
    },
  });
  return { stream, through };
}

test('the exit comes after the "uncaught exception" line reached the output, not before', async () => {
  const out = slowOutput(15);
  const logger = createLogger({ level: 'info', format: 'json', stream: out.stream });
  const events = new EventEmitter();
  const exits: Array<{ code: number; linesThrough: string[] }> = [];
  let exited!: () => void;
  const exitCalled = new Promise<void>((r) => (exited = r));
  installProcessSafety(logger, () => undefined, {
    events,
    outputs: [out.stream],
    exit: (code) => {
      exits.push({ code, linesThrough: [...out.through] });
      exited();
    },
  });
  logger.info('before the bug');
  events.emit('uncaughtException', new Error('boom'));
  await exitCalled;
  expect(exits).toHaveLength(1);
  expect(exits[0].code).toBe(1);
  const lines = exits[0].linesThrough.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { message: string; error?: string });
  expect(lines.map((l) => l.message)).toEqual(['before the bug', 'uncaught exception']);
  expect(lines[1].error).toBe('boom');
});

test('an output that never drains does not hold the exit: it comes after the flush timeout', async () => {
  const stuck = new Writable({ write: () => undefined });
  const logger = createLogger({ level: 'info', format: 'json', stream: stuck });
  const events = new EventEmitter();
  const codes: number[] = [];
  let exited!: () => void;
  const exitCalled = new Promise<void>((r) => (exited = r));
  installProcessSafety(logger, () => undefined, {
    events,
    outputs: [stuck],
    flushTimeoutMs: 30,
    exit: (code) => {
      codes.push(code);
      exited();
    },
  });
  events.emit('uncaughtException', new Error('boom'));
  await exitCalled;
  expect(codes).toEqual([1]);
});
