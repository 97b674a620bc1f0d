/** The connection cap's default (server/http/connections.ts): pure arithmetic on the file limit read at start. */
import { defaultMaxConnections, fileLimit, serverOptions } from '../../../server/http/connections';

test.each([
  [1024, 512],
  [512, 256],
  [65_536, 32_768],
  [undefined, 512], // unreadable: 1024 assumed
  [Infinity, 32_768], // unlimited: a cap still bounds memory
  [1, 1],
])('file limit %s → at most %s client connections', (limit, max) => {
  expect(defaultMaxConnections(limit)).toBe(max);
});

test('this process\'s file limit is read (Linux: /proc/self/limits)', () => {
  const limit = fileLimit();
  expect(limit === Infinity || (typeof limit === 'number' && limit > 0)).toBe(true);
});

test('Node checks the header and request deadlines four times per header bound, at most once a second', () => {
  expect(serverOptions({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000 })).toEqual({
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 5_000,
    connectionsCheckingInterval: 1000,
  });
  expect(serverOptions({ headersTimeoutMs: 400, requestTimeoutMs: 800, keepAliveTimeoutMs: 300 }).connectionsCheckingInterval).toBe(100);
});
