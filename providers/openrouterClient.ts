import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import axios, { type AxiosInstance } from 'axios';
import type { Headers } from './rateLimit';

export interface ClientOptions {
  baseUrl: string;
  referer?: string;
  title?: string;
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
  constructor(readonly reason: 'timeout' | 'network' | 'aborted', message: string) {
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

/** One upstream call per method, over keep-alive agents; no retries here (the dispatcher owns them). */
export class OpenRouterClient {
  private readonly http: AxiosInstance;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64 });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 64 });

  constructor(private readonly options: ClientOptions) {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (options.referer) headers['HTTP-Referer'] = options.referer;
    if (options.title) {
      headers['X-Title'] = options.title;
      headers['X-OpenRouter-Title'] = options.title;
    }
    this.http = axios.create({
      baseURL: options.baseUrl,
      headers,
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      validateStatus: () => true,
      maxRedirects: 0,
      proxy: false,
      // We read the text and parse it ourselves: a non-JSON error page must not throw.
      responseType: 'text',
      transformResponse: (data) => data,
      maxContentLength: 64 * 1024 * 1024,
    });
  }

  private signal(opts: CallOptions): AbortSignal {
    const timeout = AbortSignal.timeout(opts.timeoutMs);
    return opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  }

  private failure(err: unknown, opts: CallOptions): UpstreamFailure {
    if (opts.signal?.aborted) return new UpstreamFailure('aborted', 'the client went away');
    const e = err as { code?: string; message?: string; name?: string };
    if (e.code === 'ERR_CANCELED' || e.name === 'TimeoutError' || e.name === 'CanceledError' || e.code === 'ECONNABORTED') {
      return new UpstreamFailure('timeout', `no answer within ${opts.timeoutMs} ms`);
    }
    // axios messages can hold the URL but never the key (it travels in a header); keep only the code.
    return new UpstreamFailure('network', e.code ? `network error ${e.code}` : 'network error');
  }

  async chat(key: string, body: Record<string, unknown>, opts: CallOptions): Promise<UpstreamReply> {
    try {
      const res = await this.http.post<string>('/chat/completions', JSON.stringify(body), {
        headers: { Authorization: `Bearer ${key}` },
        signal: this.signal(opts),
      });
      return { status: res.status, headers: res.headers as Headers, body: parseBody(res.data) };
    } catch (err) {
      throw this.failure(err, opts);
    }
  }

  /** A streaming call: the status and headers, and the body as a stream the caller must consume or destroy. */
  async chatStream(key: string, body: Record<string, unknown>, opts: CallOptions): Promise<StreamReply> {
    try {
      const res = await this.http.post<Readable>('/chat/completions', JSON.stringify(body), {
        headers: { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' },
        responseType: 'stream',
        signal: opts.signal,
        timeout: opts.timeoutMs,
      });
      return { status: res.status, headers: res.headers as Headers, stream: res.data };
    } catch (err) {
      throw this.failure(err, opts);
    }
  }

  async get(path: string, key: string | undefined, opts: CallOptions): Promise<UpstreamReply> {
    try {
      const res = await this.http.get<string>(path, {
        headers: key ? { Authorization: `Bearer ${key}` } : {},
        signal: this.signal(opts),
      });
      return { status: res.status, headers: res.headers as Headers, body: parseBody(res.data) };
    } catch (err) {
      throw this.failure(err, opts);
    }
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
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
