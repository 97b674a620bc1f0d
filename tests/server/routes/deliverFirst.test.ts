/**
 * An answer goes to the client before the key's state takes it in (issue 21): the client of a JSON
 * chat waits for the upstream's answer, never for orche's bookkeeping after it. These tests hold the
 * store's `succeed` (the last step of recording a success) open and read the answer meanwhile.
 */
import request from 'supertest';
import { MemoryStore } from '../../../providers/store/memory';
import type { KeyView, PickResult } from '../../../providers/store/types';
import { hi, startStack, type Stack } from '../../helpers/stack';

const KEY = 'sk-or-v1-deliver-first-0000000001';

/** A memory store whose `succeed` waits until the test lets it go (or fails, when told to). */
class HeldStore extends MemoryStore {
  calls = 0;
  private waiting: Array<() => void> = [];
  held = true;
  failWith: Error | undefined;
  override async succeed(view: KeyView, now: number): Promise<void> {
    this.calls++;
    if (this.held) await new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.failWith) throw this.failWith;
    return super.succeed(view, now);
  }
  release(): void {
    this.held = false;
    for (const w of this.waiting.splice(0)) w();
  }
}

/** Fails after `ms` instead of waiting for a response that never comes. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms))]);
}

describe('an answer is delivered before it is recorded', () => {
  let stack: Stack;
  let store: HeldStore;

  beforeEach(async () => {
    store = new HeldStore();
    stack = await startStack({ PROVIDER_KIMI_API_KEY: KEY }, { keys: [{ key: KEY }] }, { store });
  });
  afterEach(async () => {
    store.release();
    await stack.close();
  });

  it('answers /v1/chat/completions while the store still records the success, and records it', async () => {
    const res = await within(stack.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi }), 3000, 'POST /v1/chat/completions');
    expect({ status: res.status, body: res.body }).toMatchObject({ status: 200 });
    expect(res.body.object).toBe('chat.completion');
    expect(res.headers['x-orche-attempts']).toBe('1');
    // The success is being recorded, not skipped: the store was told, and is still at it.
    expect(store.calls).toBe(1);
    store.release();
    const status = await request(stack.url).get('/status');
    expect((status.body.providers as Array<{ id: string }>).find((p) => p.id === 'kimi')).toMatchObject({ requests: 1, successes: 1 });
  });

  it('answers /api/chat while the store still records the success', async () => {
    const res = await within(stack.http.post('/api/chat').send({ provider: 'kimi', messages: hi }), 3000, 'POST /api/chat');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ provider: 'kimi', attempts: 1 });
    expect(res.body.content).toContain('sim');
    expect(store.calls).toBe(1);
  });

  it('a failure recording the success after the answer went out is logged; the client has its answer and the next request is served', async () => {
    store.failWith = new Error('store went away');
    const res = await within(stack.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi }), 3000, 'POST /v1/chat/completions');
    expect(res.status).toBe(200);
    store.release();
    await new Promise((r) => setTimeout(r, 20));
    const errors = stack.logs.parsed().filter((l) => l.level === 'error');
    expect(errors.map((l) => l.error)).toContain('store went away');
    store.failWith = undefined;
    const next = await within(stack.http.post('/v1/chat/completions').send({ model: 'kimi', messages: hi }), 3000, 'second POST');
    expect(next.status).toBe(200);
  });
});

describe('with a store that decides elsewhere (no pickSync, as Redis), the answer waits for the record', () => {
  it('answers only once the store has recorded the success', async () => {
    // As RedisStore: no synchronous pick, so its writes are round trips the answer stays behind.
    const store = new (class extends HeldStore {
      override async pick(...args: Parameters<MemoryStore['pick']>): Promise<PickResult> {
        return MemoryStore.prototype.pickSync.apply(this, args);
      }
    })();
    Object.defineProperty(store, 'pickSync', { value: undefined });
    const stack = await startStack({ PROVIDER_KIMI_API_KEY: KEY }, { keys: [{ key: KEY }] }, { store });
    try {
      let answered = false;
      const pending = stack.http
        .post('/v1/chat/completions')
        .send({ model: 'kimi', messages: hi })
        .then((res) => ((answered = true), res));
      await new Promise((r) => setTimeout(r, 150));
      expect(store.calls).toBe(1);
      expect(answered).toBe(false);
      store.release();
      const res = await within(pending, 3000, 'POST /v1/chat/completions');
      expect(res.status).toBe(200);
      expect(res.body.object).toBe('chat.completion');
    } finally {
      store.release();
      await stack.close();
    }
  });
});
