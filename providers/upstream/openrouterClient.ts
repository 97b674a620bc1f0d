import http from 'node:http';
import https from 'node:https';
import { pipeline, type Readable, Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { maskSecrets, SecretMasker } from './mask';
import type { Headers } from '../limits/rateLimit';

export interface ClientOptions {
  baseUrl: string;
  referer?: string;
  title?: string;
  /** A JSON body over this many bytes is refused and its connection cut (ORCHE_MAX_UPSTREAM_BYTES). */
  maxBodyBytes?: number;
}

export interface UpstreamReply {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the raw text when the answer was not JSON. */
  body: unknown;
}

export interface StreamReply {
  status: number;
  headers: Headers;
  stream: Readable;
}

/** The call got no answer: the timeout fired, or the network failed. */
export class UpstreamFailure extends Error {
  /** too_large: the answer came but was over ORCHE_MAX_UPSTREAM_BYTES; it was not read further. */
  constructor(readonly reason: 'timeout' | 'network' | 'aborted' | 'too_large', message: string) {
    super(message);
  }
}

export interface CallOptions {
  timeoutMs: number;
  /** The client went away: abort at once. */
  signal?: AbortSignal;
}

/** Parsed JSON, or the raw text when it is not JSON. */
export function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** What one request sends; the response is read whole (JSON) or handed over as a stream. */
interface Call {
  method: 'GET' | 'POST';
  path: string;
  key?: string;
  body?: string;
  accept?: string;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

/**
 * The upstream's stream with key material masked (docs/design.md#key-material-and-relayed-text): every event, comment and error chunk a
 * client or a log line may see comes through here. Destroying either end destroys both.
 */
function maskedStream(res: Readable, keys: string[]): Readable {
  const decoder = new StringDecoder('utf8');
  const masker = new SecretMasker(keys);
  const out = new Transform({
    transform(chunk: Buffer, _enc, done) {
      const text = masker.push(decoder.write(chunk));
      done(null, text ? Buffer.from(text, 'utf8') : undefined);
    },
    flush(done) {
      const text = masker.push(decoder.end()) + masker.end();
      done(null, text ? Buffer.from(text, 'utf8') : undefined);
    },
  });
  pipeline(res, out, () => undefined);
  return out;
}

/**
 * One upstream call per method, on node:http(s) over keep-alive agents; no retries here (the
 * dispatcher owns them). The bench's profile put axios at a fifth of orche's CPU per request
 * (config merging, interceptors, listeners per call); this does the same call directly.
 */
export class OpenRouterClient {
  private readonly base: URL;
  private readonly basePath: string;
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;
  private readonly headers: Record<string, string>;
  private readonly maxBodyBytes: number;

  constructor(options: ClientOptions) {
    this.maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
    this.base = new URL(options.baseUrl);
    this.basePath = this.base.pathname.replace(/\/+$/, '');
    const secure = this.base.protocol === 'https:';
    this.transport = secure ? https : http;
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo' })
      : new http.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64, scheduling: 'lifo' });
    this.headers = { 'content-type': 'application/json' };
    if (options.referer) this.headers['http-referer'] = options.referer;
    if (options.title) {
      this.headers['x-title'] = options.title;
      this.headers['x-openrouter-title'] = options.title;
    }
  }

  /**
   * Sends one request and resolves with the response once its headers arrive. The timeout covers the
   * wait for the headers (and, for `readWhole`, the body); the signal aborts at any time.
   */
  private send(call: Call, opts: CallOptions, readWhole: boolean): Promise<{ res: http.IncomingMessage; text?: string }> {
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) return reject(new UpstreamFailure('aborted', 'the client went away'));
      const headers: Record<string, string | number> = { ...this.headers };
      if (call.key) headers.authorization = `Bearer ${call.key}`;
      if (call.accept) headers.accept = call.accept;
      if (call.body !== undefined) headers['content-length'] = Buffer.byteLength(call.body);
      let settled = false;
      const fail = (f: UpstreamFailure) => {
        if (settled) return;
        settled = true;
        cleanup();
        req.destroy();
        reject(f);
      };
      const req = this.transport.request(
        { protocol: this.base.protocol, hostname: this.base.hostname, port: this.base.port, path: this.basePath + call.path, method: call.method, headers, agent: this.agent },
        (res) => {
          if (!readWhole) {
            settled = true;
            cleanup();
            return resolve({ res });
          }
          const chunks: Buffer[] = [];
          let size = 0;
          // Over the cap the connection is cut (fail destroys the request): nothing more is read or held.
          const tooLarge = () => new UpstreamFailure('too_large', `The upstream answer is larger than ORCHE_MAX_UPSTREAM_BYTES (${this.maxBodyBytes} bytes)`);
          if (Number(res.headers['content-length']) > this.maxBodyBytes) return fail(tooLarge());
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.maxBodyBytes) fail(tooLarge());
            else chunks.push(c);
          });
          res.on('end', () => {
            if (settled) return;
            settled = true;
            cleanup();
            // The one place a whole upstream body becomes text: key material goes here (docs/design.md#key-material-and-relayed-text).
            resolve({ res, text: maskSecrets(Buffer.concat(chunks).toString('utf8'), call.key ? [call.key] : []) });
          });
          // A connection reset mid-body: the response errors or closes before its end.
          res.on('error', () => fail(new UpstreamFailure('network', 'the upstream connection broke mid-body')));
          res.on('close', () => {
            if (!res.complete) fail(new UpstreamFailure('network', 'the upstream connection closed mid-body'));
          });
        },
      );
      const timer = setTimeout(() => fail(new UpstreamFailure('timeout', `no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      const onAbort = () => fail(new UpstreamFailure('aborted', 'the client went away'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      // The message names the error code only: never the URL's query or a header.
      req.on('error', (err: NodeJS.ErrnoException) => fail(new UpstreamFailure('network', err.code ? `network error ${err.code}` : 'network error')));
      req.end(call.body);
    });
  }

  private async json(call: Call, opts: CallOptions): Promise<UpstreamReply> {
    const { res, text } = await this.send(call, opts, true);
    return { status: res.statusCode ?? 0, headers: res.headers as Headers, body: parseBody(text ?? '') };
  }

  chat(key: string, body: Record<string, unknown>, opts: CallOptions): Promise<UpstreamReply> {
    return this.json({ method: 'POST', path: '/chat/completions', key, body: JSON.stringify(body) }, opts);
  }

  /**
   * A streaming call: the status and headers, and the body as a stream the caller must consume or
   * destroy. Aborting the signal (or destroying the stream) closes the upstream connection.
   */
  async chatStream(key: string, body: Record<string, unknown>, opts: CallOptions): Promise<StreamReply> {
    const { res } = await this.send({ method: 'POST', path: '/chat/completions', key, body: JSON.stringify(body), accept: 'text/event-stream' }, opts, false);
    if (opts.signal) {
      const signal = opts.signal;
      const onAbort = () => res.destroy();
      if (signal.aborted) res.destroy();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        res.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    return { status: res.statusCode ?? 0, headers: res.headers as Headers, stream: maskedStream(res, [key]) };
  }

  get(path: string, key: string | undefined, opts: CallOptions): Promise<UpstreamReply> {
    return this.json({ method: 'GET', path, key }, opts);
  }

  /** The model slugs the upstream lists, or null when it cannot be asked. */
  async listModels(timeoutMs = 5000): Promise<string[] | null> {
    try {
      const reply = await this.get('/models', undefined, { timeoutMs });
      const data = (reply.body as { data?: Array<{ id?: unknown }> } | undefined)?.data;
      if (reply.status !== 200 || !Array.isArray(data)) return null;
      return data.map((m) => m.id).filter((id): id is string => typeof id === 'string');
    } catch {
      return null;
    }
  }

  close(): void {
    this.agent.destroy();
  }
}
