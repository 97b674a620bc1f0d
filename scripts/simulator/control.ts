/** The /_sim control routes: drive a simulator from another process (loopback, no auth). */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody } from './chat';
import type { CallRecord, FaultRule, SimAccount, SimKey, Simulator } from './types';

export type ControlTarget = Pick<Simulator, 'addRule' | 'clearRules' | 'updateKey' | 'addAccount' | 'reset' | 'resetCounters' | 'setLatency' | 'release'> & {
  callsSince(seq: number): CallRecord[];
};

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function notFound(res: ServerResponse): void {
  sendJson(res, 404, { error: { code: 404, message: 'Not Found' } });
}

function noContent(res: ServerResponse): void {
  res.writeHead(204);
  res.end();
}

/** Calls as the control route shows them: without the key itself and the request body. */
function publicCall(c: CallRecord): Omit<CallRecord, 'key' | 'body'> {
  return {
    seq: c.seq, at: c.at, keyId: c.keyId, account: c.account, model: c.model, status: c.status,
    outcome: c.outcome, stream: c.stream, closedByClient: c.closedByClient, inFlight: c.inFlight, chunksSent: c.chunksSent,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Handles `/_sim/<action>`; `query` is the text after '?'. */
export function handleControl(target: ControlTarget, action: string, query: string, req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' && action === 'calls') {
    const since = Number(new URLSearchParams(query).get('since') ?? 0);
    sendJson(res, 200, { calls: target.callsSince(Number.isFinite(since) ? since : 0).map(publicCall) });
    return;
  }
  if (req.method === 'DELETE' && action === 'rules') {
    target.clearRules();
    noContent(res);
    return;
  }
  if (req.method !== 'POST') {
    readBody(req, () => notFound(res));
    return;
  }
  readBody(req, (raw) => {
    let body: unknown;
    try {
      body = raw === '' ? {} : JSON.parse(raw);
    } catch {
      sendJson(res, 400, { error: { code: 400, message: 'Invalid JSON in request body' } });
      return;
    }
    if (!isObject(body)) {
      sendJson(res, 400, { error: { code: 400, message: 'Expected a JSON object' } });
      return;
    }
    switch (action) {
      case 'rules':
        if (typeof body.type !== 'string') return sendJson(res, 400, { error: { code: 400, message: 'rule.type is required' } });
        target.addRule(body as unknown as FaultRule);
        return noContent(res);
      case 'keys':
        if (typeof body.key !== 'string') return sendJson(res, 400, { error: { code: 400, message: 'key is required' } });
        target.updateKey(body.key, body as Partial<SimKey>);
        return noContent(res);
      case 'accounts':
        if (typeof body.id !== 'string') return sendJson(res, 400, { error: { code: 400, message: 'id is required' } });
        target.addAccount(body as unknown as SimAccount);
        return noContent(res);
      case 'reset':
        target.reset();
        return noContent(res);
      case 'reset-counters':
        target.resetCounters();
        return noContent(res);
      case 'release':
        target.release(typeof body.gate === 'string' ? body.gate : undefined);
        return noContent(res);
      case 'latency':
        if (typeof body.ms !== 'number') return sendJson(res, 400, { error: { code: 400, message: 'ms (number) is required' } });
        target.setLatency(body.ms);
        return noContent(res);
      default:
        return notFound(res);
    }
  });
}
