import { errorChunk, formatSse, readSseEvents, SseParser, SseTooLargeError } from '../../../providers/streams/sse';

const OPENROUTER = ': OPENROUTER PROCESSING\n\ndata: {"a":1}\n\ndata: {"choices":[],"usage":{"total_tokens":3}}\n\ndata: [DONE]\n\n';

function parseAll(pieces: string[]) {
  const p = new SseParser();
  const out = pieces.flatMap((x) => p.push(x));
  return [...out, ...p.end()];
}

test('OpenRouter stream: the comment is an event without data, each data line an event, raw kept byte for byte', () => {
  const events = parseAll([OPENROUTER]);
  expect(events.map((e) => e.data)).toEqual([undefined, '{"a":1}', '{"choices":[],"usage":{"total_tokens":3}}', '[DONE]']);
  expect(events.map((e) => e.raw).join('')).toBe(OPENROUTER);
});

test('the same events whatever the chunking, down to one character at a time', () => {
  const whole = parseAll([OPENROUTER]);
  expect(parseAll(OPENROUTER.split(''))).toEqual(whole);
  for (const cut of [1, 5, 24, 25, 26, 40]) expect(parseAll([OPENROUTER.slice(0, cut), OPENROUTER.slice(cut)])).toEqual(whole);
});

test('an event is emitted only once its blank line arrives', () => {
  const p = new SseParser();
  expect(p.push('data: {"a"')).toEqual([]);
  expect(p.push(':1}\n')).toEqual([]);
  expect(p.push('\n')).toEqual([{ raw: 'data: {"a":1}\n\n', data: '{"a":1}' }]);
});

test('CRLF and CR line endings, a CR split from its LF across chunks, multi-line data and named events', () => {
  expect(parseAll(['event: delta\r\ndata: a\r', '\ndata: b\r\n\r\ndata: c\r\r', 'data: d\n\n'])).toEqual([
    { raw: 'event: delta\r\ndata: a\r\ndata: b\r\n\r\n', event: 'delta', data: 'a\nb' },
    { raw: 'data: c\r\r', data: 'c' },
    { raw: 'data: d\n\n', data: 'd' },
  ]);
});

test('"data:" without a space, a field without a colon, and extra blank lines between events', () => {
  expect(parseAll(['data:x\n\n\n\ndata\n\n']).map((e) => e.data)).toEqual(['x', '']);
});

test('a last event without its blank line still counts at the end of the stream; a dangling comment does not', () => {
  expect(parseAll(['data: [DONE]'])).toEqual([{ raw: 'data: [DONE]\n\n', data: '[DONE]' }]);
  expect(parseAll(['data: [DONE]\r'])).toEqual([{ raw: 'data: [DONE]\r\n\n', data: '[DONE]' }]);
  expect(parseAll(['data: [DONE]\n'])).toEqual([{ raw: 'data: [DONE]\n\n', data: '[DONE]' }]);
  expect(parseAll([': keep-alive'])).toEqual([]);
});

test('an event larger than the bound throws instead of growing without end', () => {
  const p = new SseParser(100);
  expect(() => p.push(`data: ${'x'.repeat(200)}`)).toThrow(SseTooLargeError);
});

test('readSseEvents reassembles a UTF-8 character split across byte chunks', async () => {
  const bytes = Buffer.from('data: {"t":"héllo — 你好"}\n\n', 'utf8');
  const chunks = [...bytes].map((b) => Buffer.from([b]));
  async function* source() {
    yield* chunks;
  }
  const events = [];
  for await (const e of readSseEvents(source())) events.push(e);
  expect(events).toHaveLength(1);
  expect(JSON.parse(events[0].data!)).toEqual({ t: 'héllo — 你好' });
});

// OpenRouter's own mid-stream error chunk names its stream: `{"id":"cmpl-abc123","object":"chat.completion.chunk",
// "error":{…},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}` (documented example,
// openrouter.ai/docs/api-reference/streaming, tests/fixtures/openrouter/200-stream-server-error-documented.json);
// @openrouter/sdk's chunk schema also requires `created` and `model`.
test('formatSse writes named JSON events; errorChunk is OpenRouter\'s mid-stream error form, naming the stream it ends', () => {
  expect(formatSse({ provider: 'kimi' }, 'delta')).toBe('event: delta\ndata: {"provider":"kimi"}\n\n');
  const stream = { id: 'gen-1759420128-LjBsuYJf6lKeyy66nQs9', created: 1759420128, model: 'z-ai/glm-4.5' };
  const chunk = JSON.parse(new SseParser().push(errorChunk({ code: 502, message: 'Provider returned error', metadata: { a: 1 } }, stream))[0].data!);
  expect(chunk).toEqual({
    id: 'gen-1759420128-LjBsuYJf6lKeyy66nQs9',
    object: 'chat.completion.chunk',
    created: 1759420128,
    model: 'z-ai/glm-4.5',
    error: { code: 502, message: 'Provider returned error', metadata: { a: 1, error_type: 'provider_unavailable' } },
    choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }],
  });
});

// @openrouter/sdk's chunk schema: `error.code` a whole number, and `metadata.error_type` a string
// whenever `metadata` is there (OpenRouter's newer error bodies carry it: shared/docs/design.md#streaming).
test('errorChunk: metadata always carries error_type (the upstream\'s own kept), and the code is a whole number', () => {
  const stream = { id: 'gen-1', created: 1759420128, model: 'z-ai/glm-4.5' };
  const errorOf = (e: Parameters<typeof errorChunk>[0]) => JSON.parse(new SseParser().push(errorChunk(e, stream))[0].data!).error;
  expect(errorOf({ code: 429, message: 'Rate limit exceeded' })).toEqual({ code: 429, message: 'Rate limit exceeded', metadata: { error_type: 'rate_limit_exceeded' } });
  expect(errorOf({ code: 502, message: 'x', metadata: { error_type: 'provider_overloaded', provider_name: 'P' } }).metadata).toEqual({ error_type: 'provider_overloaded', provider_name: 'P' });
  expect(errorOf({ code: '504', message: 'x', metadata: { reason: 'timeout' } })).toEqual({ code: 504, message: 'x', metadata: { reason: 'timeout', error_type: 'timeout' } });
  expect(errorOf({ code: 'server_error', message: 'x' }).code).toBe(502);
  expect(errorOf({ code: 418, message: 'x' }).metadata.error_type).toBe('unmapped');
});

test('the work is linear: a 4 MiB line in 16 KiB chunks is scanned about once, not once per chunk', () => {
  const p = new SseParser(8 * 1024 * 1024);
  const chunk = 'x'.repeat(16 * 1024);
  const total = 4 * 1024 * 1024;
  p.push('data: ');
  for (let sent = 0; sent < total; sent += chunk.length) expect(p.push(chunk)).toEqual([]);
  const events = p.push('\n\n');
  expect(events).toHaveLength(1);
  expect(events[0].data).toHaveLength(total);
  // Each character looked at a small constant number of times (quadratic would be ~128 × total).
  expect(p.scannedChars).toBeLessThan(2 * total + 100);
});

test('a flood of keep-alive comments in one chunk: one comment event with the same raw text, scanned once', () => {
  const p = new SseParser();
  const flood = ':\n\n'.repeat(100_000);
  expect(p.push(flood + 'data: x\n\n: tail\n\n')).toEqual([{ raw: flood }, { raw: 'data: x\n\n', data: 'x' }, { raw: ': tail\n\n' }]);
  expect(p.scannedChars).toBeLessThanOrEqual(flood.length + 20);
});
