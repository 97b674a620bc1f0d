/**
 * parseConfig / loadConfig: defaults, validation messages (naming the variable, never a key), key lists.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig, type Config, type Env } from '../../config';
import { globalSchema, variablesOf } from '../../config/schema';
import { keyId, keyPreview } from '../../providers/keys/keys';

const KEY_A = 'sk-or-v1-test-a';
const KEY_B = 'sk-or-v1-test-b';
const KEY_C = 'sk-or-v1-test-c';
const KEY_D = 'sk-or-v1-test-d';
const KEY_E = 'sk-or-v1-test-e';
const SECRET = 'sk-or-v1-test-very-secret-0123456789abcdef';

function configError(env: Env, cwd?: string): ConfigError {
  try {
    parseConfig(env, cwd);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const kimi = (c: Config) => c.providers.find((p) => p.slug === 'kimi')!;

let dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'orche-config-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe('parseConfig', () => {
  test('defaults', () => {
    const c = parseConfig({ PROVIDER_KIMI_API_KEY: KEY_A }, tempDir());
    expect(c.port).toBe(8002);
    expect(c.host).toBe('0.0.0.0');
    expect(c.upstream).toEqual({ baseUrl: 'https://openrouter.ai/api/v1', referer: undefined, title: undefined, maxBodyBytes: 8 * 1024 * 1024 });
    // Every documented default (docs/design.md#where-each-rule-lives); fields added later do not break this test.
    expect(c.rotation).toMatchObject({
      cooldownMs: 60_000,
      maxCooldownMs: 900_000,
      maxAttempts: 4,
      maxWaitMs: 3_000,
      backoffBaseMs: 1_000,
      backoffMaxMs: 10_000,
      requestTimeoutMs: 60_000,
    });
    expect(c.budgets).toEqual({ freeRpm: undefined, freeRpd: undefined });
    expect(c.log).toEqual({ level: 'info', format: 'json' });
    expect(c.stateFile).toBeUndefined();
    expect(c.redis).toBeUndefined();
    expect(c.clientTokens).toEqual([]);
    expect(c.providers.map((p) => [p.id, p.slug, p.name, p.model, p.strategy])).toEqual([
      ['GLM45', 'glm45', 'GLM-4.5', 'z-ai/glm-4.5', 'round-robin'],
      ['GPTOSS', 'gptoss', 'GPT-OSS', 'openai/gpt-oss-120b', 'round-robin'],
      ['LLAMA3', 'llama3', 'Llama 4 Maverick', 'meta-llama/llama-4-maverick', 'round-robin'],
      ['KIMI', 'kimi', 'MoonshotAI Kimi', 'moonshotai/kimi-k2', 'round-robin'],
      ['QWEN3', 'qwen3', 'Qwen3', 'qwen/qwen3-235b-a22b', 'round-robin'],
      ['FALCON', 'falcon', 'TNG DeepSeek', 'tngtech/deepseek-r1t2-chimera', 'round-robin'],
    ]);
    expect(kimi(c).keys).toEqual([{ id: keyId(KEY_A), key: KEY_A, preview: keyPreview(KEY_A), role: 'primary', account: `key:${keyId(KEY_A)}` }]);
    expect(c.providers.filter((p) => p.slug !== 'kimi').every((p) => p.keys.length === 0)).toBe(true);
  });

  test.each([
    ['ORCHE_MAX_ATTEMPTS', 'abc'],
    ['ORCHE_STRATEGY', 'random'],
    ['PROVIDER_KIMI_FALLBACK', 'nope'],
    ['PORT', '99999'],
    ['LOG_FORMAT', 'xml'],
    // docs/design.md#start-up-checks: guessable client tokens and admin tokens with spaces are refused at start-up.
    ['ORCHE_CLIENT_TOKENS', 'tok-alpha-123'],
    ['ORCHE_CLIENT_TOKENS', 'a-long-enough-client-token,short-one'],
    ['ORCHE_ADMIN_TOKEN', 'admin token with spaces'],
    ['ORCHE_TRUST_PROXY', 'true'],
    ['ORCHE_TRUST_PROXY', '10.0.0.0/99'],
    ['ORCHE_MAX_UPSTREAM_BYTES', '10'],
    ['ORCHE_MAX_STREAMS_PER_CLIENT', '-1'],
  ])('bad value %s=%s → ConfigError naming the variable, without any key', (variable, value) => {
    const err = configError({ PROVIDER_KIMI_API_KEY: SECRET, PROVIDER_GLM45_BACKUP_KEYS: `team1:${SECRET}x`, [variable]: value });
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.name).toBe('ConfigError');
    expect(err.message.startsWith(`${variable}: expected `)).toBe(true);
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain('sk-or-');
  });

  test('a refused token is never echoed in the message', () => {
    expect(configError({ PROVIDER_KIMI_API_KEY: KEY_A, ORCHE_CLIENT_TOKENS: 'short-secret-1' }).message).not.toContain('short-secret-1');
    expect(configError({ PROVIDER_KIMI_API_KEY: KEY_A, ORCHE_ADMIN_TOKEN: 'adm secret 99' }).message).not.toContain('adm secret 99');
  });

  test.each([
    ['false', false],
    ['2', 2],
    ['loopback', ['loopback']],
    ['10.0.0.0/8, 192.168.1.7, fd00::/8', ['10.0.0.0/8', '192.168.1.7', 'fd00::/8']],
  ])('ORCHE_TRUST_PROXY=%s', (value, expected) => {
    expect(parseConfig({ PROVIDER_KIMI_API_KEY: KEY_A, ORCHE_TRUST_PROXY: value }).trustProxy).toEqual(expected);
  });

  test('exposure defaults: no proxy trusted, 8 MiB upstream bodies, 10-minute streams, 20 streams per client', () => {
    const c = parseConfig({ PROVIDER_KIMI_API_KEY: KEY_A });
    expect([c.trustProxy, c.upstream.maxBodyBytes, c.rotation.maxStreamMs, c.maxStreamsPerClient]).toEqual([false, 8 * 1024 * 1024, 600_000, 20]);
  });

  test('connection bounds (docs/design.md#connections): headers 10 s, whole request 30 s, keep-alive 5 s, the cap from the file limit unless set', () => {
    expect(parseConfig({ PROVIDER_KIMI_API_KEY: KEY_A }).connections).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, maxConnections: undefined });
    expect(parseConfig({ PROVIDER_KIMI_API_KEY: KEY_A, ORCHE_MAX_CONNECTIONS: '300' }).connections.maxConnections).toBe(300);
    expect(configError({ PROVIDER_KIMI_API_KEY: KEY_A, ORCHE_MAX_CONNECTIONS: '0' }).message).toMatch(/^ORCHE_MAX_CONNECTIONS: expected a whole number from 1/);
    expect(configError({ PROVIDER_KIMI_API_KEY: KEY_A, ORCHE_HEADERS_TIMEOUT_MS: '40000' }).message).toBe('ORCHE_HEADERS_TIMEOUT_MS: expected a number of milliseconds not above ORCHE_BODY_TIMEOUT_MS');
  });

  test('a fallback to the provider itself → ConfigError naming the variable', () => {
    const err = configError({ PROVIDER_KIMI_API_KEY: KEY_A, PROVIDER_KIMI_FALLBACK: 'kimi' });
    expect(err.message.startsWith('PROVIDER_KIMI_FALLBACK: expected another provider ID')).toBe(true);
    expect(err.message).not.toContain('kimi,');
  });

  test('a key with a space inside → ConfigError naming the list, never echoing the key', () => {
    const err = configError({ PROVIDER_KIMI_API_KEY: KEY_A, PROVIDER_KIMI_BACKUP_KEYS: 'sk-or-v1-test-very secret-part' });
    expect(err.message.startsWith('PROVIDER_KIMI_BACKUP_KEYS: expected')).toBe(true);
    expect(err.message).not.toContain('secret-part');
    expect(err.message).not.toContain('sk-or-v1-test');
  });

  test('no keys at all → message lists PROVIDER_<ID>_API_KEY and points to `npm run demo`', () => {
    const err = configError({ PORT: '8080' });
    expect(err.message).toContain('PROVIDER_<ID>_API_KEY');
    expect(err.message).toContain('npm run demo');
    expect(err.message).toContain('GLM45, GPTOSS, LLAMA3, KIMI, QWEN3, FALCON');
  });

  test('backup list: blanks and whitespace trimmed, duplicates (also of the primary) dropped, order kept', () => {
    const c = parseConfig({
      PROVIDER_KIMI_API_KEY: `  ${KEY_A}  `,
      PROVIDER_KIMI_BACKUP_KEYS: ` ${KEY_B} , ,${KEY_A},  ${KEY_C},${KEY_B},, `,
    });
    expect(kimi(c).keys.map((k) => [k.key, k.role])).toEqual([
      [KEY_A, 'primary'],
      [KEY_B, 'backup'],
      [KEY_C, 'backup'],
    ]);
  });

  test('`team1:sk-or-…` declares account team1; an undeclared key is its own account', () => {
    const c = parseConfig({ PROVIDER_KIMI_API_KEY: `team1:${KEY_A}`, PROVIDER_KIMI_BACKUP_KEYS: `team1:${KEY_B},${KEY_C}` });
    expect(kimi(c).keys.map((k) => [k.key, k.account, k.id])).toEqual([
      [KEY_A, 'team1', keyId(KEY_A)],
      [KEY_B, 'team1', keyId(KEY_B)],
      [KEY_C, `key:${keyId(KEY_C)}`, keyId(KEY_C)],
    ]);
  });

  test('KEYS_FILE: one key per line, # comments and blank lines ignored, duplicates dropped', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'kimi.keys'), `# backups for kimi\n${KEY_D}  # the d key\n\n   ${KEY_E}\n#${KEY_C}\n${KEY_A}\nteam9:${KEY_C}\n`);
    const c = parseConfig({ PROVIDER_KIMI_API_KEY: KEY_A, PROVIDER_KIMI_BACKUP_KEYS: KEY_B, PROVIDER_KIMI_KEYS_FILE: 'kimi.keys' }, dir);
    expect(kimi(c).keys.map((k) => [k.key, k.role, k.account])).toEqual([
      [KEY_A, 'primary', `key:${keyId(KEY_A)}`],
      [KEY_B, 'backup', `key:${keyId(KEY_B)}`],
      [KEY_D, 'backup', `key:${keyId(KEY_D)}`],
      [KEY_E, 'backup', `key:${keyId(KEY_E)}`],
      [KEY_C, 'backup', 'team9'],
    ]);
  });

  test('KEYS_FILE that cannot be read → ConfigError naming the variable', () => {
    const err = configError({ PROVIDER_KIMI_API_KEY: KEY_A, PROVIDER_KIMI_KEYS_FILE: 'missing.keys' }, tempDir());
    expect(err.message.startsWith('PROVIDER_KIMI_KEYS_FILE: expected')).toBe(true);
  });

  test('RESERVE_KEYS have role reserve', () => {
    const c = parseConfig({ PROVIDER_KIMI_API_KEY: KEY_A, PROVIDER_KIMI_BACKUP_KEYS: KEY_B, PROVIDER_KIMI_RESERVE_KEYS: ` ${KEY_C}, ${KEY_D} ` });
    expect(kimi(c).keys.map((k) => [k.key, k.role])).toEqual([
      [KEY_A, 'primary'],
      [KEY_B, 'backup'],
      [KEY_C, 'reserve'],
      [KEY_D, 'reserve'],
    ]);
  });

  test('per-provider options: strategy, rpm, rpd, fallback (upper case accepted), model, name', () => {
    const c = parseConfig({
      PROVIDER_KIMI_API_KEY: KEY_A,
      PROVIDER_KIMI_STRATEGY: 'failover',
      PROVIDER_KIMI_RPM: '20',
      PROVIDER_KIMI_RPD: '50',
      PROVIDER_KIMI_FALLBACK: 'GLM45',
      PROVIDER_KIMI_MODEL: 'moonshotai/kimi-k2:free',
      PROVIDER_KIMI_NAME: 'Kimi (free)',
    });
    expect(kimi(c)).toMatchObject({ strategy: 'failover', rpm: 20, rpd: 50, fallback: 'glm45', model: 'moonshotai/kimi-k2:free', name: 'Kimi (free)' });
  });

  test('ORCHE_PROVIDERS adds a provider configured the same way', () => {
    const c = parseConfig({
      PROVIDER_KIMI_API_KEY: KEY_A,
      ORCHE_PROVIDERS: 'mistral',
      PROVIDER_MISTRAL_MODEL: 'mistralai/mistral-small-3.2-24b-instruct:free',
      PROVIDER_MISTRAL_API_KEY: KEY_B,
      PROVIDER_MISTRAL_STRATEGY: 'failover',
    });
    expect(c.providers).toHaveLength(7);
    const m = c.providers[6];
    expect(m).toMatchObject({ id: 'MISTRAL', slug: 'mistral', name: 'MISTRAL', model: 'mistralai/mistral-small-3.2-24b-instruct:free', strategy: 'failover' });
    expect(m.keys.map((k) => [k.key, k.role])).toEqual([[KEY_B, 'primary']]);
  });

  test('ORCHE_PROVIDERS without a model for the new provider → ConfigError naming PROVIDER_X_MODEL', () => {
    const err = configError({ PROVIDER_KIMI_API_KEY: KEY_A, ORCHE_PROVIDERS: 'MISTRAL' });
    expect(err.message.startsWith('PROVIDER_MISTRAL_MODEL: expected')).toBe(true);
  });
});

describe('loadConfig', () => {
  test('real environment variables win over orche.env', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'orche.env'), `PORT=9000\nPROVIDER_KIMI_API_KEY=${KEY_A}\nLOG_FORMAT=pretty\n`);
    const c = loadConfig({ PORT: '9100' }, dir);
    expect(c.port).toBe(9100);
    expect(c.log.format).toBe('pretty');
    expect(kimi(c).keys.map((k) => k.key)).toEqual([KEY_A]);
  });

  test('ORCHE_ENV_FILE names another file; a missing one is a ConfigError', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'custom.env'), `PROVIDER_KIMI_API_KEY=${KEY_B}\n`);
    const c = loadConfig({ ORCHE_ENV_FILE: 'custom.env' }, dir);
    expect(kimi(c).keys.map((k) => k.key)).toEqual([KEY_B]);
    expect(() => loadConfig({ ORCHE_ENV_FILE: 'nope.env' }, dir)).toThrow(ConfigError);
  });
});

describe('the variables behind each part of the config (one list: config/schema.ts)', () => {
  test('every variable feeds a part of the config, so a reload can name it', () => {
    const config = parseConfig({ PROVIDER_KIMI_API_KEY: 'sk-or-v1-config-parts-test-key-0001' });
    const parts = Object.keys(config) as Array<keyof typeof config>;
    const named = parts.flatMap((p) => variablesOf(p));
    expect([...named].sort()).toEqual(Object.keys(globalSchema.shape).sort());
    expect(variablesOf('clientRpm')).toEqual(['ORCHE_CLIENT_RPM']);
    expect(variablesOf('redis')).toEqual(['REDIS_URL', 'ORCHE_REDIS_PREFIX', 'ORCHE_REDIS_REQUIRED']);
  });
});
