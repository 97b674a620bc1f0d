/**
 * Who a request is for: the client identity (per-client limits, server/auth/clientIdentity.ts) and, when
 * a frontend names one, its end user. The wait room shares capacity by `fairKey`, which the chat
 * routes pass down to the dispatcher (explicitly: AsyncLocalStorage would slow every promise).
 */

export interface RequestClient {
  client: string;
  /** The end user the client named (OpenAI `user` or X-Orche-User), if any. */
  user?: string;
}

/** The unit of fair sharing: the end user when named (within its client), else the client. */
export function fairKey(c: RequestClient | undefined): string {
  if (!c) return 'anonymous';
  return c.user === undefined ? c.client : `${c.client}|u:${c.user}`;
}

/** fairKey's inverse: the client and its end user ('' when it named none), for turns by client first. */
export function splitFairKey(key: string): { client: string; user: string } {
  const at = key.indexOf('|u:');
  return at < 0 ? { client: key, user: '' } : { client: key.slice(0, at), user: key.slice(at + 3) };
}

/** The client part of a fair key: the key itself when it names no end user. */
export function clientOf(fairKey: string): string {
  return splitFairKey(fairKey).client;
}
