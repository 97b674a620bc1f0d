import { Readable, pipeline, Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { type Dispatcher, Pool } from 'undici';
import { maskSecrets, SecretMasker } from './mask';
import type { Headers } from '../limits/rateLimit';
import type { Cancel } from '../dispatch/cancel';

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
  /** What `body` was parsed from: the answer as it came, key material masked. */
  text: string;
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
  signal?: Cancel;
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

/** An answer as it arrives: read whole (JSON, parsed), or handed over as a stream once its head is in. */
type Arrived = (UpstreamReply & { stream?: undefined }) | { status: number; headers: Headers; stream: Readable; text?: undefined };

/**
 * One upstream call per method, on undici's pooled client (the stack's fastest: issue 21 measured
 * node:http's client at twice its CPU per call), through its dispatch API: a JSON answer is
 * collected as bytes and parsed once, with no stream in between. No retries here (the dispatcher
 * owns them); the timeouts are ours, so undici's own are off.
 */
export class OpenRouterClient {
  private readonly basePath: string;
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;
  private readonly maxBodyBytes: number;

  constructor(options: ClientOptions) {
    this.maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
    const base = new URL(options.baseUrl);
    this.basePath = base.pathname.replace(/\/+$/, '');
    // As many sockets as node:http's agent allowed before (512); idle ones close when the upstream says so.
    this.pool = new Pool(base.origin, { connections: 512, headersTimeout: 0, bodyTimeout: 0 });
    this.headers = { 'content-type': 'application/json' };
    if (options.referer) this.headers['http-referer'] = options.referer;
    if (options.title) {
      this.headers['x-title'] = options.title;
      this.headers['x-openrouter-title'] = options.title;
    }
  }

  /**
   * Sends one request. `whole`: resolves with the answer read to its end; else once its headers are
   * in, with the body as a stream. The timeout covers the wait for the headers (and, read whole, the
   * body); the signal aborts at any time before that.
   */
  private send(call: Call, opts: CallOptions, whole: boolean): Promise<Arrived> {
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) return reject(new UpstreamFailure('aborted', 'the client went away'));
      const headers: Record<string, string> = { ...this.headers };
      if (call.key) headers.authorization = `Bearer ${call.key}`;
      if (call.accept) headers.accept = call.accept;
      const max = this.maxBodyBytes;
      let controller: Dispatcher.DispatchController | undefined;
      let settled = false;
      let status = 0;
      let head: Headers = {};
      let body: Readable | undefined;
      let ended = false;
      const chunks: Buffer[] = [];
      let size = 0;
      const cleanup = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      // Over the cap the connection is cut: nothing more is read or held.
      const fail = (f: UpstreamFailure) => {
        if (settled) return;
        settled = true;
        cleanup();
        controller?.abort(f);
        reject(f);
      };
      const tooLarge = () => new UpstreamFailure('too_large', `The upstream answer is larger than ORCHE_MAX_UPSTREAM_BYTES (${max} bytes)`);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          // Given up while it waited for a socket: it is not sent.
          if (settled && !body) c.abort(new UpstreamFailure('aborted', 'abandoned'));
        },
        onResponseStart(c, statusCode, h) {
          // An informational head (103 Early Hints …) is not the answer: node:http did not hand it over either.
          if (statusCode < 200) return;
          status = statusCode;
          head = h as Headers;
          if (!whole) {
            settled = true;
            cleanup();
            body = new Readable({
              read: () => c.resume(),
              destroy: (err, done) => {
                if (!ended) c.abort(err ?? new UpstreamFailure('aborted', 'the stream was closed'));
                done(err);
              },
            });
            return resolve({ status, headers: head, stream: body });
          }
          if (Number(h['content-length']) > max) fail(tooLarge());
        },
        onResponseData(c, chunk) {
          if (body) {
            if (!body.push(chunk)) c.pause();
            return;
          }
          size += chunk.length;
          if (size > max) fail(tooLarge());
          else chunks.push(chunk);
        },
        onResponseEnd() {
          ended = true;
          if (body) return void body.push(null);
          if (settled) return;
          settled = true;
          cleanup();
          // The one place a whole upstream body becomes text: key material goes here (docs/design.md#key-material-and-relayed-text).
          const raw = (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8');
          const text = maskSecrets(raw, call.key ? [call.key] : []);
          // Parsed here, not after another turn of the microtask queue (issue 21).
          resolve({ status, headers: head, body: parseBody(text), text });
        },
        // A refused connection, a reset mid-body, our own abort (already settled then). The message
        // names the error code only: never the URL's query or a header.
        onResponseError(_c, err) {
          if (body) return void (ended || body.destroy(new UpstreamFailure('network', 'the upstream connection broke mid-body')));
          const code = (err as NodeJS.ErrnoException).code;
          fail(new UpstreamFailure('network', status ? 'the upstream connection broke mid-body' : code ? `network error ${code}` : 'network error'));
        },
      };
      const timer = setTimeout(() => fail(new UpstreamFailure('timeout', `no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      const onAbort = () => fail(new UpstreamFailure('aborted', 'the client went away'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.pool.dispatch({ path: this.basePath + call.path, method: call.method, headers, body: call.body ?? null }, handler);
    });
  }

  private json(call: Call, opts: CallOptions): Promise<UpstreamReply> {
    return this.send(call, opts, true) as Promise<UpstreamReply>;
  }

  chat(key: string, body: Record<string, unknown>, opts: CallOptions): Promise<UpstreamReply> {
    return this.json({ method: 'POST', path: '/chat/completions', key, body: JSON.stringify(body) }, opts);
  }

  /**
   * A streaming call: the status and headers, and the body as a stream the caller must consume or
   * destroy. Aborting the signal (or destroying the stream) closes the upstream connection.
   */
  async chatStream(key: string, body: Record<string, unknown>, opts: CallOptions): Promise<StreamReply> {
    const { status, headers, stream } = await this.send({ method: 'POST', path: '/chat/completions', key, body: JSON.stringify(body), accept: 'text/event-stream' }, opts, false);
    const res = stream!;
    if (opts.signal) {
      const signal = opts.signal;
      const onAbort = () => res.destroy();
      if (signal.aborted) res.destroy();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        res.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    return { status, headers, stream: maskedStream(res, [key]) };
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
    // Open sockets are cut, as node:http's agent.destroy() did; calls still waiting fail.
    this.pool.destroy().catch(() => undefined);
  }
}
