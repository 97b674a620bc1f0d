/**
 * `npm run demo`: the built-in OpenRouter simulator and orche against it, with demo keys.
 * No network, no keys of yours. Ctrl-C stops both.
 */
import { parseConfig } from '../config';
import { createApp } from '../server/app';
import { DEMO_ADMIN_TOKEN, demoWorld } from './demoSetup';
import { startSimulator } from './simulator';

async function main(): Promise<void> {
  const simPort = Number(process.env.SIM_PORT ?? 8787);
  const sim = await startSimulator({ port: simPort, latencyMs: Number(process.env.SIM_LATENCY_MS ?? 40), stream: { chunkDelayMs: 60, chunks: 8, roleDelta: true } }).catch(() =>
    startSimulator({ port: 0, latencyMs: 40 }),
  );
  const world = demoWorld(sim.baseUrl);
  for (const k of world.simKeys) sim.addKey(k);
  const config = parseConfig({
    LOG_FORMAT: 'pretty',
    ...world.env,
    // The user's own settings win (PORT, LOG_LEVEL, strategy, ...), except the upstream: the demo is offline.
    ...process.env,
    OPENROUTER_BASE_URL: sim.baseUrl,
  });
  const orche = createApp(config);
  await orche.start(); // as `npm start` does: the key probe, then listening
  const { url } = await orche.listen(config.port, config.host);
  await orche.checkModels();
  const local = url.replace('0.0.0.0', '127.0.0.1');
  console.log(`
orche demo is running: six providers, three demo keys each, against the OpenRouter simulator.

  orche           ${local}
  status          ${local}/status
  key status      ${local}/api/key-status
  models          ${local}/api/models
  simulator       ${sim.baseUrl}   (control: ${sim.baseUrl.replace('/api/v1', '')}/_sim/calls)

Try:
  curl -s ${local}/api/chat -H 'Content-Type: application/json' \\
    -d '{"provider":"kimi","messages":[{"role":"user","content":"hi"}]}'
  curl -s ${local}/api/chat/fanout -H 'Content-Type: application/json' \\
    -d '{"messages":[{"role":"user","content":"hi"}]}'
  # make the simulator rate-limit kimi's first key once, then watch orche rotate:
  curl -s -X POST ${sim.baseUrl.replace('/api/v1', '')}/_sim/rules -H 'Content-Type: application/json' \\
    -d '{"match":{"model":"moonshotai/kimi-k2"},"type":"free-per-min","times":1}'
  # real OpenRouter shapes (docs/design.md#the-outcome-table): type edge-1015 (with "retryAfterSeconds"), stream-open-error,
  # upstream-429-message, model-cap-daily, key-limit-403 (with "keyLimit":"total|daily|weekly|monthly"), no-credits, model-gone,
  # request-too-large (with "promptTokenLimit" / "maxTokensLimit": a 4xx naming the limit, no key changes, docs/design.md#blame-on-evidence)
  curl -s -X POST ${sim.baseUrl.replace('/api/v1', '')}/_sim/rules -H 'Content-Type: application/json' \\
    -d '{"type":"edge-1015","retryAfterSeconds":10,"times":1}'   # then: curl -s ${local}/status
  npm run test:rotation -- --url ${local} --sim ${sim.baseUrl.replace('/api/v1', '')} --admin-token ${DEMO_ADMIN_TOKEN}
  # admin routes use the demo token:
  curl -s -X POST ${local}/api/keys/reset -H 'Authorization: Bearer ${DEMO_ADMIN_TOKEN}'

Ctrl-C to stop.
`);
  const stop = async () => {
    await orche.close();
    await sim.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error(`demo failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
