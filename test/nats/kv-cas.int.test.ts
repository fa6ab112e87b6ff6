// The compare-and-set helper (src/nats/kv-cas.ts) and the wrong-last-sequence check (src/nats/jetstream-errors.ts)
// against a real nats-server: racing writers on two connections lose no update, a key that never stops moving
// ends in E_KV_CONTENDED after the bounded attempts, and other failures end the loop at once.
import type { KV, NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWrongLastSequence, JS_WRONG_LAST_SEQUENCE } from '../../src/nats/jetstream-errors.js';
import { casBackoffMs, kvCompareAndSet, retryOnConflict, type KvCodec } from '../../src/nats/kv-cas.js';
import { BrokerError } from '../../src/wire/errors.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';

let nats: TestNats;
let ncA: NatsConnection;
let kvA: KV;
let kvB: KV;

const counter: KvCodec<number> = {
  decode: (b) => Number(new TextDecoder().decode(b)),
  encode: (n) => new TextEncoder().encode(String(n)),
};

beforeAll(async () => {
  nats = await startTestNats();
  ncA = await nats.connect('writer-a');
  kvA = await ncA.jetstream().views.kv('cas_test', { history: 1 });
  kvB = await (await nats.connect('writer-b')).jetstream().views.kv('cas_test');
});

afterAll(async () => {
  await nats?.stop();
});

describe('kvCompareAndSet on a real server', () => {
  it('racing writers on two connections lose no increment; the losers retried', async () => {
    const PER_LOOP = 25;
    const loop = async (kv: KV): Promise<number> => {
      let retries = 0;
      for (let i = 0; i < PER_LOOP; i++) {
        const r = await kvCompareAndSet(kv, 'race', counter, (n) => (n ?? 0) + 1, { path: 'race', maxAttempts: 50 });
        expect(r.changed).toBe(true);
        retries += r.attempts - 1;
      }
      return retries;
    };
    // Four loops start in one tick: all four first reads see the same revision, so at least three writes lose.
    const retries = await Promise.all([loop(kvA), loop(kvA), loop(kvB), loop(kvB)]);
    expect(counter.decode((await kvA.get('race'))?.value ?? new Uint8Array())).toBe(4 * PER_LOOP);
    expect(retries.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3);
  });

  it('creates a missing key at revision 0, and writes nothing when change returns its input', async () => {
    const created = await kvCompareAndSet(kvA, 'fresh', counter, (n) => (n === undefined ? 7 : n), { path: 'fresh' });
    expect(created).toMatchObject({ value: 7, changed: true, attempts: 1 });
    const same = await kvCompareAndSet(kvB, 'fresh', counter, (n) => n, { path: 'fresh' });
    expect(same).toEqual({ value: 7, revision: created.revision, changed: false, attempts: 1 });
    expect((await kvA.get('fresh'))?.revision).toBe(created.revision);
  });

  it('writes a deleted key on top of its delete marker', async () => {
    await kvA.put('gone', counter.encode(5));
    await kvA.delete('gone');
    const seen: (number | undefined)[] = [];
    const r = await kvCompareAndSet(kvB, 'gone', counter, (n) => (seen.push(n), 1), { path: 'gone' });
    expect(seen).toEqual([undefined]);
    expect(r).toMatchObject({ value: 1, changed: true });
    expect(counter.decode((await kvA.get('gone'))?.value ?? new Uint8Array())).toBe(1);
  });

  it("passes change's own error through at once, without retrying", async () => {
    let calls = 0;
    const refuse = (): number => {
      calls += 1;
      throw new BrokerError('E_ACCESS_EXTENDED', 'already extended', { path: 'id' });
    };
    await expect(kvCompareAndSet(kvA, 'fresh', counter, refuse, { path: 'id' })).rejects.toMatchObject({
      code: 'E_ACCESS_EXTENDED',
    });
    expect(calls).toBe(1);
  });
});

describe('retryOnConflict and isWrongLastSequence on a real server', () => {
  it('a write at a stale revision is refused with 10071, which isWrongLastSequence recognises', async () => {
    const stale = await kvA.put('stale', counter.encode(1));
    await kvB.put('stale', counter.encode(2));
    const err: unknown = await kvA.update('stale', counter.encode(3), stale).catch((e: unknown) => e);
    expect(err).toMatchObject({ api_error: { err_code: JS_WRONG_LAST_SEQUENCE } });
    expect(isWrongLastSequence(err)).toBe(true);
    expect(isWrongLastSequence(new Error('wrong last sequence'))).toBe(false);
    expect(isWrongLastSequence({ api_error: { err_code: 10058 } })).toBe(false);
    expect(isWrongLastSequence(null)).toBe(false);
  });

  it('a key that keeps moving ends in E_KV_CONTENDED after exactly maxAttempts rounds, naming the path only', async () => {
    const stale = await kvA.put('moving', counter.encode(1));
    await kvB.put('moving', counter.encode(2));
    let rounds = 0;
    const err: unknown = await retryOnConflict(
      async () => {
        rounds += 1;
        return kvA.update('moving', counter.encode(99), stale);
      },
      { path: 'phi_registry', maxAttempts: 4, baseDelayMs: 1 },
    ).catch((e: unknown) => e);
    expect(rounds).toBe(4);
    expect(err).toBeInstanceOf(BrokerError);
    expect(err).toMatchObject({
      code: 'E_KV_CONTENDED',
      path: 'phi_registry',
      message: 'phi_registry: other writers changed it during each of 4 compare-and-set attempts',
    });
    expect(isWrongLastSequence((err as BrokerError).cause)).toBe(true);
    expect(counter.decode((await kvA.get('moving'))?.value ?? new Uint8Array())).toBe(2);
  });
});

describe('casBackoffMs (full jitter)', () => {
  it('doubles its cap from baseDelayMs each retry, up to maxDelayMs, scaled by the random draw', () => {
    const half = { random: () => 0.5 };
    expect([2, 3, 4, 5].map((a) => casBackoffMs(a, half))).toEqual([1, 2, 4, 8]);
    expect(casBackoffMs(12, half)).toBe(100);
    expect(casBackoffMs(3, { baseDelayMs: 10, maxDelayMs: 15, random: () => 0.999 })).toBeCloseTo(14.985);
    expect(casBackoffMs(9, { random: () => 0 })).toBe(0);
  });

  it('refuses an attempt that has no wait before it (a caller mistake)', () => {
    expect(() => casBackoffMs(1)).toThrow(TypeError);
    expect(() => casBackoffMs(2.5)).toThrow(TypeError);
  });
});
