/**
 * GET /dashboard: the page itself, and a real browser (Debian's Chromium via playwright-core) driving
 * it against a demo-like instance: six providers, three keys each, the real simulator.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { keyId } from '../../../providers/keys/keys';
import { BUILTIN_PROVIDERS } from '../../../config/providers';
import { hi, startStack, type Stack } from '../../helpers/stack';
import { ROOT } from '../../helpers/paths';

const CHROMIUM = '/usr/bin/chromium';
const haveBrowser = existsSync(CHROMIUM);
if (!haveBrowser && process.env.CI !== 'true') {
  console.warn(`\n\n*** ${CHROMIUM} is missing: the dashboard BROWSER test is SKIPPED. Install it with \`apt-get install -y chromium\`; under CI=true it fails instead. ***\n`);
}
const browserTest = haveBrowser || process.env.CI === 'true' ? test : test.skip;

const keysOf = (id: string) => [1, 2, 3].map((i) => `sk-or-v1-dash-${id.toLowerCase()}-key-000${i}`);

let stack: Stack | undefined;
let browser: Browser | undefined;
afterEach(async () => {
  await browser?.close();
  await stack?.close();
  browser = stack = undefined;
});

async function demoStack(): Promise<Stack> {
  const env: Record<string, string> = {};
  const simKeys = [];
  for (const p of BUILTIN_PROVIDERS) {
    const [primary, ...backups] = keysOf(p.id);
    env[`PROVIDER_${p.id}_API_KEY`] = primary;
    env[`PROVIDER_${p.id}_BACKUP_KEYS`] = backups.join(',');
    simKeys.push(...keysOf(p.id).map((key) => ({ key })));
  }
  return startStack(env, { keys: simKeys, latencyMs: 30 });
}

test('the page is served by orche itself: HTML, nothing loaded from another origin', async () => {
  stack = await demoStack();
  const res = await stack.http.get('/dashboard');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
  expect(res.headers['content-security-policy']).toContain("default-src 'self'");
  expect(res.text).toContain('/api/key-status');
  expect(res.text).toContain('/api/chat/fanout');
  expect(res.text).not.toMatch(/(src|href)=["']?(https?:)?\/\//i);
});

browserTest('a browser sees six providers and their keys, a rate-limited key turn to cooling, and six answers from "try it"', async () => {
  stack = await demoStack();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const external: string[] = [];
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    if (!r.url().startsWith(stack!.url)) external.push(r.url());
  });
  await page.goto(`${stack.url}/dashboard`);

  // Locators, not waitForFunction: the page's CSP rightly forbids eval.
  await page.locator('article.provider').nth(5).waitFor({ timeout: 5000 }).catch((err: Error) => {
    throw new Error(`${err.message}; page errors: ${pageErrors.join(' | ') || 'none'}`);
  });
  expect(await page.locator('article.provider').count()).toBe(6);
  for (const p of BUILTIN_PROVIDERS) {
    const ids = await page.$$eval(`article.provider[data-provider="${p.id.toLowerCase()}"] tr.key`, (rows) => rows.map((r) => r.getAttribute('data-key-id')));
    expect(ids).toEqual(keysOf(p.id).map(keyId));
  }

  // The simulator rate-limits kimi's second key; requests go on until it has met that 429.
  const [, limited] = keysOf('KIMI');
  stack.sim.addRule({ match: { key: limited }, type: 'generic-429', retryAfterSeconds: 120, times: 1 });
  for (let i = 0; i < 3 && !stack.sim.calls.some((c) => c.key === limited); i++) {
    expect((await stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi })).status).toBe(200);
  }
  const shownAt = Date.now();
  const row = `tr.key[data-key-id="${keyId(limited)}"][data-state="cooling"]`;
  await page.waitForSelector(row, { timeout: 2500 });
  expect(Date.now() - shownAt).toBeLessThan(2500); // within the 1.5 s refresh, plus a render
  expect(await page.textContent(`${row} td.cd`)).toMatch(/^(1m 5\d|2m 00)s$|^1m \d\ds$/);
  expect(await page.textContent(`${row} td.state`)).toBe('cooling');

  // "Try it" streams: GLM-4.5's upstream holds after two reasoning chunks, and the page shows that
  // reasoning (collapsed) before any answer text exists; released, every provider finishes.
  stack.sim.addRule({ match: { model: 'z-ai/glm-4.5' }, type: 'gate', gate: 'dashboard', afterChunks: 2, times: 1 });
  await page.fill('#prompt', 'Say hello in five words.');
  await page.click('#send');
  const glm = '.result[data-result-provider="glm45"]';
  await page.locator(`${glm} details.reasoning:not([hidden])`).waitFor({ timeout: 5000 });
  expect(stack.sim.calls.find((c) => c.model === 'z-ai/glm-4.5')!.chunksSent).toBe(2);
  expect(await page.textContent(`${glm} details.reasoning .text`)).toMatch(/^Okay, the user greets z-ai\/glm-4\.5\./);
  expect(await page.textContent(`${glm} p.answer`)).toBe('');
  expect(await page.getAttribute(`${glm} details.reasoning`, 'open')).toBeNull();
  stack.sim.release('dashboard');
  await page.locator('.result[data-ok="true"]').nth(5).waitFor({ timeout: 5000 });
  expect(await page.locator('.result').count()).toBe(6);
  const answers = await page.$$eval('.result', (els) => els.map((e) => ({
    provider: e.getAttribute('data-result-provider'),
    meta: e.querySelector('.meta')?.textContent ?? '',
    answer: e.querySelector('p.answer')?.textContent ?? '',
    reasoning: e.querySelector('details.reasoning:not([hidden])') ? e.querySelector('details.reasoning .text')?.textContent ?? '' : null,
  })));
  expect(answers.map((a) => a.provider).sort()).toEqual(BUILTIN_PROVIDERS.map((p) => p.id.toLowerCase()).sort());
  for (const a of answers) {
    expect(a.meta).toMatch(/^\d+ ms · key [0-9a-f]{12} · 1 attempt\(s\)$/);
    expect(a.answer).toMatch(/^Hello from /);
  }
  // The four reasoning models show their reasoning above the answer; the two others show none.
  const reasoned = Object.fromEntries(answers.map((a) => [a.provider, a.reasoning]));
  for (const p of ['glm45', 'gptoss', 'qwen3', 'falcon']) expect(reasoned[p]).toMatch(/^Okay, the user greets .* \(sim #\d+\)\.$/);
  expect([reasoned.llama3, reasoned.kimi]).toEqual([null, null]);
  // Cost (usage.cost): each card shows its provider's last hour and day as /api/usage has them,
  // each key its day, and the client table this page's own client (every call came from here).
  const kimiCost = 'article.provider[data-provider="kimi"] div.cost';
  await page.locator(kimiCost, { hasText: /^cost \$0\.\d{6} last hour/ }).waitFor({ timeout: 2500 });
  const kimiUsage = (await stack.http.get('/api/usage?provider=kimi')).body.providers[0];
  expect(kimiUsage.day.cost_usd).toBeGreaterThan(0);
  expect(await page.textContent(kimiCost)).toBe(`cost $${kimiUsage.hour.cost_usd.toFixed(6)} last hour · $${kimiUsage.day.cost_usd.toFixed(6)} last day`);
  const keyCosts = await page.$$eval('article.provider[data-provider="kimi"] tr.key td.cost', (tds) => tds.map((td) => td.textContent));
  expect(keyCosts.filter((c) => c !== '$0')).toHaveLength(kimiUsage.keys.filter((k: { day: { cost_usd: number } }) => k.day.cost_usd > 0).length);
  expect(await page.locator('#costs tr.client').count()).toBe(1);
  expect(await page.textContent('#costs tr.client td:nth-child(1)')).toMatch(/^ip:[0-9a-f]{12}$/);
  // Opened for the screenshot, so the README shows what the reasoning looks like.
  await page.click(`${glm} details.reasoning summary`);
  await page.waitForSelector('#rotations li code');
  expect(external).toEqual([]);
  expect(pageErrors).toEqual([]);

  mkdirSync(resolve(ROOT, 'test-output'), { recursive: true });
  const shot = resolve(ROOT, 'test-output/dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  // The committed copy for the README changes only when asked, so test runs leave the tree clean.
  const docs = resolve(ROOT, 'docs/dashboard.png');
  if (!existsSync(docs) || process.env.UPDATE_SCREENSHOT === '1') {
    mkdirSync(resolve(ROOT, 'docs'), { recursive: true });
    copyFileSync(shot, docs);
  }
});
