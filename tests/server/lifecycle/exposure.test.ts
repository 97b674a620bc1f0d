import { parseConfig, type Env } from '../../../config';
import { exposureWarnings, warnExposure } from '../../../server/lifecycle/exposure';
import { createLogger } from '../../../server/observe/logger';
import { LogCapture } from '../../helpers/stack';

const KEY = 'sk-or-v1-exposure-unit-test-key-000001';
const codes = (env: Env) => exposureWarnings(parseConfig({ PROVIDER_KIMI_API_KEY: KEY, ...env })).map((w) => w.code);

describe('start-up exposure warnings', () => {
  test.each<[string, Env, string[]]>([
    ['loopback, OpenRouter over https: nothing to say', { HOST: '127.0.0.1' }, []],
    ['::1 and localhost are loopback too', { HOST: '::1' }, []],
    ['the default host 0.0.0.0 with no client tokens: an open relay, status routes open', {}, ['open_relay', 'status_open']],
    ['beyond loopback with client tokens and protected status: nothing', { HOST: '10.1.2.3', ORCHE_CLIENT_TOKENS: 'a-client-token-of-20c', ORCHE_PROTECT_STATUS: 'true' }, []],
    ['beyond loopback with client tokens only: status routes open', { HOST: '0.0.0.0', ORCHE_CLIENT_TOKENS: 'a-client-token-of-20c' }, ['status_open']],
    ['an http: base URL', { HOST: '127.0.0.1', OPENROUTER_BASE_URL: 'http://openrouter.ai/api/v1' }, ['insecure_upstream']],
    ['a base URL that is not OpenRouter', { HOST: '127.0.0.1', OPENROUTER_BASE_URL: 'https://proxy.example.com/v1' }, ['foreign_upstream']],
    ['both', { HOST: '127.0.0.1', OPENROUTER_BASE_URL: 'http://10.0.0.5:8080/v1' }, ['insecure_upstream', 'foreign_upstream']],
  ])('%s', (_name, env, expected) => {
    expect(codes(env)).toEqual(expected);
  });

  test('each warning is logged once, as a warn line; a base URL is named by its origin, never its credentials', () => {
    const logs = new LogCapture();
    const logger = createLogger({ level: 'info', format: 'json', stream: logs });
    const config = parseConfig({ PROVIDER_KIMI_API_KEY: KEY, HOST: '0.0.0.0', OPENROUTER_BASE_URL: 'http://user:hunter2secret@proxy.example.com:8080/api/v1?token=qs-secret' });
    warnExposure(config, logger);
    const lines = logs.parsed();
    expect(lines.map((l) => [l.level, l.code])).toEqual([
      ['warn', 'open_relay'],
      ['warn', 'status_open'],
      ['warn', 'insecure_upstream'],
      ['warn', 'foreign_upstream'],
    ]);
    expect(lines[2].base_url).toBe('http://proxy.example.com:8080');
    const text = logs.lines.join('\n');
    expect(text).not.toContain('hunter2secret');
    expect(text).not.toContain('qs-secret');
  });
});
