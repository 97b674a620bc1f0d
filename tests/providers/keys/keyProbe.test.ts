/**
 * GET /key's answer as OpenRouter documents it (tests/fixtures/openrouter-key), read by orche, and the
 * simulator's GET /key against the same shape (docs/design.md#what-get-key-is-used-for: "The simulator's /key answers in OpenRouter's
 * current shape").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readKeyInfo } from '../../../providers/keys/keyProbe';
import { startSimulator } from '../../../scripts/simulator';
import { FIXTURES } from '../../helpers/paths';

const documented = JSON.parse(readFileSync(join(FIXTURES, 'openrouter-key/get-key-documented.json'), 'utf8')) as { body: { data: Record<string, unknown> } };

test('the documented GET /key answer: creator_user_id, expires_at and the deprecated rate_limit, as reported', () => {
  expect(readKeyInfo(documented.body)).toEqual({
    limit: 100,
    limit_remaining: 74.5,
    usage: 25.5,
    is_free_tier: false,
    free_model_daily_requests: null,
    creator_user_id: 'user_2dHFtVWx2n56w6HkM0000000000',
    expires_at: '2027-12-31T23:59:59.000Z',
    rate_limit: { requests: 1000, interval: '1h', note: 'This field is deprecated and safe to ignore.' },
  });
});

test('odd values are read as absent, never thrown on or passed through raw', () => {
  expect(readKeyInfo({ data: { creator_user_id: 42, expires_at: 'soon', rate_limit: 'x', free_model_daily_requests: { limit: '50' } } })).toMatchObject({
    creator_user_id: null,
    expires_at: null,
    rate_limit: null,
    free_model_daily_requests: { limit: null, remaining: null, used: null },
  });
  expect(readKeyInfo(undefined)).toMatchObject({ limit: null, creator_user_id: null });
});

test('the simulator answers GET /key with every field of the documented answer, plus the account\'s free-model day', async () => {
  const sim = await startSimulator({ keys: [{ key: 'sk-or-v1-shape-key-0001', account: 'user_shape' }], accounts: [{ id: 'user_shape', usedToday: 7 }] });
  try {
    const res = await fetch(`${sim.baseUrl}/key`, { headers: { authorization: 'Bearer sk-or-v1-shape-key-0001' } });
    const data = ((await res.json()) as { data: Record<string, unknown> }).data;
    expect(Object.keys(data).sort()).toEqual([...Object.keys(documented.body.data), 'free_model_daily_requests'].sort());
    expect(data).toMatchObject({
      creator_user_id: 'user_shape',
      expires_at: null,
      rate_limit: { requests: 1000, interval: '1h', note: 'This field is deprecated and safe to ignore.' },
      free_model_daily_requests: { limit: 50, remaining: 43, used: 7 },
    });
  } finally {
    await sim.close();
  }
});
