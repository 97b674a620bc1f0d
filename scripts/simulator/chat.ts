/** POST /chat/completions: auth, validation, fault rules, limits, then the answer (JSON or SSE). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isFreeModel, keyId } from '../../providers/keys/keys';
import { Call, type Core } from './call';
import { EDGE_1015_TEXT, faultReply, isTransportFault, keyLimitMessage, upstreamCongestionMessage } from './faults';
import { countServed, findLimitHit } from './limits';
import type { KeyState } from './registry';
import {
  type Answer, chunkHead, contentEvent, contentFor, DONE_EVENT, errorEvent, errorReply, finishEvent, GARBAGE_HTML, isReasoningModel,
  limitReply, PROCESSING_COMMENT, PROVIDER, promptTokens, reasoningEvent, type Reply, retryAfterSeconds, roleEvent, type SimToolCall,
  splitContent, successBody, toolCallEvents, usageEvent,
} from './responses';
import type { CallRecord, FaultRule } from './types';

/** The token of `Authorization: Bearer <token>`, or undefined when absent. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || !/^bearer /i.test(header)) return undefined;
  const token = header.slice(7).trim();
  return token === '' ? undefined : token;
}

export function readBody(req: IncomingMessage, done: (raw: string) => void): void {
  let raw = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => {
    raw += chunk;
  });
  req.on('end', () => done(raw));
}

export function handleChat(core: Core, req: IncomingMessage, res: ServerResponse): void {
  readBody(req, (raw) => onRequest(core, req, res, raw));
}

interface ParsedBody { model?: unknown; stream?: unknown }

function onRequest(core: Core, req: IncomingMessage, res: ServerResponse, raw: string): void {
  const now = core.now();
  const token = bearerToken(req.headers.authorization);
  const key = token === undefined ? undefined : core.registry.resolve(token);
  let body: unknown = raw;
  let parsed = true;
  try {
    body = JSON.parse(raw);
  } catch {
    parsed = false;
  }
  const fields = parsed && typeof body === 'object' && body !== null ? (body as ParsedBody) : undefined;
  const model = typeof fields?.model === 'string' ? fields.model : '';
  const rec: CallRecord = {
    seq: core.nextSeq(),
    at: now,
    keyId: key?.id ?? (token === undefined ? '' : keyId(token)),
    key: token ?? '',
    account: key?.account.id ?? '',
    model,
    status: 0,
    outcome: '',
    stream: fields?.stream === true,
    closedByClient: false,
    inFlight: core.enter(),
    body,
    chunksSent: 0,
  };
  res.once('close', () => core.leave());
  core.record(rec);
  const call = new Call(core, res, rec);

  const rejection = precheck(core, token, key, fields, model);
  if (rejection !== undefined || key === undefined) {
    call.answer(rejection ?? errorReply(401, 'User not found.', undefined, 'invalid-key'));
    return;
  }
  const rule = core.rules.take(key, model, rec.stream, rec.body);
  if (rule === undefined) serve(call, key, now, undefined);
  else applyRule(call, key, rule, now);
}

/** Checks in OpenRouter's order: credentials, key state, credits, body, model. */
function precheck(core: Core, token: string | undefined, key: KeyState | undefined, fields: ParsedBody | undefined, model: string): Reply | undefined {
  if (token === undefined) return errorReply(401, 'No auth credentials found', undefined, 'invalid-key');
  if (key === undefined) return errorReply(401, 'User not found.', undefined, 'invalid-key');
  const user = key.account.id;
  if (key.revoked) return errorReply(401, 'User not found.', user, 'invalid-key');
  if (key.expiresAt !== null && Date.parse(key.expiresAt) <= core.now()) return errorReply(401, 'User not found.', user, 'invalid-key');
  if (!key.credits) {
    const message = 'Insufficient credits. This account never purchased credits. Make sure your key is on the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits';
    return errorReply(402, message, user, 'no-credits');
  }
  // The key's own limit spent (gptme/gptme#1449, MCPJam/inspector#1287: message and code only).
  if (key.keyLimit !== undefined && key.keyLimit.remaining <= 0) {
    return { status: 403, headers: {}, body: JSON.stringify({ error: { message: keyLimitMessage('total'), code: 403 } }), outcome: 'key-limit' };
  }
  if (fields === undefined) return errorReply(400, 'Invalid JSON in request body', user, 'bad-request');
  if (model === '') return errorReply(400, 'No models provided', user, 'bad-request');
  if (!core.models.has(model)) return errorReply(400, `${model} is not a valid model ID`, user, 'bad-request');
  return undefined;
}

/** Normal processing: limits (only served calls count), then the completion. */
function serve(call: Call, key: KeyState, now: number, rule: FaultRule | undefined): void {
  const { core, rec } = call;
  const account = key.account;
  const accountLimited = core.accountLimits === 'all' || (core.accountLimits === 'free' && isFreeModel(rec.model));
  const hit = findLimitHit(key, account, accountLimited, now);
  if (hit !== undefined) {
    const reply = limitReply(hit, account.id, account.highBalance);
    if (core.retryAfter) reply.headers['Retry-After'] = retryAfterSeconds(hit.resetAt, now);
    call.answer(reply);
    return;
  }
  countServed(key, account, accountLimited, now);
  rec.outcome = rule?.type ?? 'ok';
  const created = Math.floor(now / 1000);
  const big = rec.stream ? largeStream(rec.body) : undefined;
  const answer = answerFor(rec, big ? 'x'.repeat(big.chunks * big.chunkBytes) : contentFor(rec.model, rec.seq));
  const prompt = promptTokens(rec.body);
  if (rec.stream) {
    const events = streamEvents(call, created, answer, prompt, big?.chunks ?? core.stream.chunks, undefined);
    const hold = rule?.type === 'gate' ? { afterChunks: rule.afterChunks ?? 1, open: core.gate(rule.gate ?? 'default') } : undefined;
    call.afterLatency(() => call.sendEvents(events, rule?.chunkDelayMs ?? core.stream.chunkDelayMs, hold));
  } else {
    const body = successBody(rec.seq, rec.model, created, answer, prompt);
    call.afterLatency(() => call.sendJson(200, {}, body));
  }
}

/** The reasoning a reasoning model shows for this call. */
export function reasoningFor(model: string, seq: number): string {
  return `Okay, the user greets ${model}. A short, friendly answer will do (sim #${seq}).`;
}

/**
 * Whether the answer carries reasoning: a reasoning model reasons unless told not to, and shows it
 * unless told to leave it out (`reasoning: {exclude: true}`, `{enabled: false}`, `{effort: "none"}`,
 * or the older `include_reasoning: false`), as OpenRouter's reasoning-tokens guide describes.
 */
function showsReasoning(model: string, body: unknown): boolean {
  if (!isReasoningModel(model)) return false;
  const b = (body ?? {}) as { reasoning?: { exclude?: unknown; enabled?: unknown; effort?: unknown }; include_reasoning?: unknown };
  const r = b.reasoning;
  if (r && typeof r === 'object' && (r.exclude === true || r.enabled === false || r.effort === 'none')) return false;
  return b.include_reasoning !== false;
}

/** The tool the answer calls: the first function tool sent, unless `tool_choice` is "none"; each required argument is "sim". */
function toolCallFor(body: unknown, seq: number): SimToolCall | undefined {
  const b = (body ?? {}) as { tools?: unknown; tool_choice?: unknown };
  if (!Array.isArray(b.tools) || b.tools.length === 0 || b.tool_choice === 'none') return undefined;
  const fn = (b.tools[0] as { function?: { name?: unknown; parameters?: { properties?: unknown; required?: unknown } } } | null)?.function;
  if (!fn || typeof fn.name !== 'string') return undefined;
  const props = fn.parameters?.properties && typeof fn.parameters.properties === 'object' ? Object.keys(fn.parameters.properties) : [];
  const required = Array.isArray(fn.parameters?.required) ? (fn.parameters.required as unknown[]).filter((x): x is string => typeof x === 'string') : props;
  const args: Record<string, string> = {};
  for (const name of required) args[name] = 'sim';
  return { id: `call_sim${seq}_0`, name: fn.name, arguments: JSON.stringify(args) };
}

function answerFor(rec: CallRecord, content: string): Answer {
  const answer: Answer = { content };
  if (showsReasoning(rec.model, rec.body)) answer.reasoning = reasoningFor(rec.model, rec.seq);
  const tool = toolCallFor(rec.body, rec.seq);
  if (tool) answer.toolCalls = [tool];
  return answer;
}

/**
 * A simulator-only request field for benchmarks: `sim_chunks` content chunks of `sim_chunk_bytes`
 * each (a large stream to relay). OpenRouter ignores unknown fields; orche's /v1 passes them on.
 */
function largeStream(body: unknown): { chunks: number; chunkBytes: number } | undefined {
  const b = body as { sim_chunks?: unknown; sim_chunk_bytes?: unknown } | undefined;
  const chunks = Number(b?.sim_chunks);
  const chunkBytes = Number(b?.sim_chunk_bytes);
  if (!Number.isInteger(chunks) || !Number.isInteger(chunkBytes) || chunks < 1 || chunkBytes < 1) return undefined;
  return { chunks: Math.min(chunks, 100_000), chunkBytes: Math.min(chunkBytes, 65_536) };
}

interface StreamFailure { afterChunks: number; code: number; message: string; metadata: Record<string, unknown> }

/** How many deltas a reasoning text and a tool call's arguments are streamed in. */
const REASONING_CHUNKS = 3;
const ARGUMENT_CHUNKS = 3;

/**
 * The SSE events of one answer: comment, reasoning deltas (reasoning models), content chunks, tool-call
 * deltas (when tools were sent), then finish + usage + [DONE], or an error chunk after `afterChunks`
 * content chunks.
 */
function streamEvents(call: Call, created: number, answer: Answer, prompt: number, chunks: number, failure: StreamFailure | undefined): string[] {
  const { core, rec } = call;
  const head = chunkHead(rec.seq, rec.model, created);
  const reasoningModel = isReasoningModel(rec.model);
  const events: string[] = [];
  if (core.stream.processingComment) events.push(PROCESSING_COMMENT);
  if (core.stream.roleDelta) events.push(roleEvent(head));
  if (answer.reasoning !== undefined) for (const piece of splitContent(answer.reasoning, REASONING_CHUNKS)) events.push(reasoningEvent(head, piece));
  const pieces = splitContent(answer.content, chunks);
  const sent = failure === undefined ? pieces.length : Math.min(failure.afterChunks, pieces.length);
  for (let i = 0; i < sent; i++) events.push(contentEvent(head, pieces[i], reasoningModel));
  if (failure !== undefined) {
    events.push(errorEvent(head, failure.code, failure.message, failure.metadata));
    return events;
  }
  (answer.toolCalls ?? []).forEach((tool, i) => events.push(...toolCallEvents(head, i, tool, ARGUMENT_CHUNKS)));
  events.push(finishEvent(head, answer), usageEvent(head, rec.model, prompt, answer), DONE_EVENT);
  return events;
}

/**
 * Faults OpenRouter admitted and passed on to a provider: the provider's 5xx or its own 429. They
 * count against the request windows like a served call (OpenRouter counted them), and an exhausted
 * window answers its 429 first, as OpenRouter checks its limits before it routes.
 */
function admitted(rule: FaultRule): boolean {
  if (rule.type === 'status') return (rule.status ?? 500) >= 500;
  return rule.type === 'upstream-429' || rule.type === 'upstream-429-message' || rule.type === 'stream-error';
}

/** A matching rule replaces normal processing; only an admitted fault counts against the limits. */
function applyRule(call: Call, key: KeyState, rule: FaultRule, now: number): void {
  const { core, rec } = call;
  if (admitted(rule)) {
    const accountLimited = core.accountLimits === 'all' || (core.accountLimits === 'free' && isFreeModel(rec.model));
    const hit = findLimitHit(key, key.account, accountLimited, now);
    if (hit !== undefined) {
      const reply = limitReply(hit, key.account.id, key.account.highBalance);
      if (core.retryAfter) reply.headers['Retry-After'] = retryAfterSeconds(hit.resetAt, now);
      call.answer(reply);
      return;
    }
    countServed(key, key.account, accountLimited, now);
  }
  // In a stream, OpenRouter often says "temporarily rate-limited upstream" in a chunk after the role delta.
  if (rule.type === 'upstream-429-message' && rec.stream) {
    openThenFail(call, rule, now, 429, rule.message ?? upstreamCongestionMessage(rec.model), rule.metadata);
    return;
  }
  if (!isTransportFault(rule.type)) {
    call.answer(faultReply(rule, { body: rec.body, model: rec.model, account: key.account, now, retryAfter: core.retryAfter }));
    return;
  }
  rec.outcome = rule.type;
  switch (rule.type) {
    case 'hang':
      return; // answered never; the client or close() ends it
    case 'reset':
      call.afterLatency(() => call.reset());
      return;
    case 'garbage':
      call.afterLatency(() => call.sendRaw(502, 'text/html', GARBAGE_HTML));
      return;
    case 'truncated': {
      const body = successBody(rec.seq, rec.model, Math.floor(now / 1000), answerFor(rec, contentFor(rec.model, rec.seq)), promptTokens(rec.body));
      call.afterLatency(() => call.truncate(body));
      return;
    }
    case 'delay':
    case 'gate':
      call.later(rule.delayMs ?? 0, () => serve(call, key, core.now(), rule));
      return;
    case 'edge-1015': {
      const headers: Record<string, string | number> = { 'Content-Type': 'text/plain; charset=UTF-8', 'Content-Length': Buffer.byteLength(EDGE_1015_TEXT) };
      if (rule.retryAfterSeconds !== undefined) headers['Retry-After'] = String(rule.retryAfterSeconds);
      call.afterLatency(() => {
        rec.status = 429;
        call.res.writeHead(429, headers);
        call.res.end(EDGE_1015_TEXT);
      });
      return;
    }
    case 'stream-open-error':
      openThenFail(call, rule, now, rule.status ?? 429, rule.message ?? 'Rate limit exceeded', rule.metadata);
      return;
    case 'stream-error': {
      const failure: StreamFailure = {
        afterChunks: rule.afterChunks ?? 1,
        code: rule.status ?? 502,
        message: rule.message ?? 'Provider returned error',
        metadata: { provider_name: PROVIDER, raw: 'upstream connection reset', ...rule.metadata },
      };
      const chunks = Math.max(core.stream.chunks, failure.afterChunks);
      const events = streamEvents(call, Math.floor(now / 1000), answerFor(rec, contentFor(rec.model, rec.seq)), promptTokens(rec.body), chunks, failure);
      call.afterLatency(() => call.sendEvents(events, rule.chunkDelayMs ?? core.stream.chunkDelayMs));
      return;
    }
  }
}

/** A stream that opens as real ones do (keep-alive, empty role delta), then fails in its next chunk. */
function openThenFail(call: Call, rule: FaultRule, now: number, code: number, message: string, metadata: Record<string, unknown> | undefined): void {
  const { core, rec } = call;
  rec.outcome = rule.type;
  const head = chunkHead(rec.seq, rec.model, Math.floor(now / 1000));
  const events: string[] = [];
  if (core.stream.processingComment) events.push(PROCESSING_COMMENT);
  events.push(roleEvent(head), errorEvent(head, code, message, metadata));
  call.afterLatency(() => call.sendEvents(events, rule.chunkDelayMs ?? core.stream.chunkDelayMs));
}
