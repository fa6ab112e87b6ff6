// The broker's batch signer (src/broker/batch-signer.ts): what is signed in one turn of the event loop shares one
// signature, each message verifying under its own proof; a full batch is signed at once; two keys never share a tree.
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchSigner } from '../../src/broker/batch-signer.js';
import { generateServiceKeys } from '../../src/crypto/keys.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { parseBatchProof, verifyBatchProof, VerifiedRoots } from '../../src/envelope/batch-sig.js';

beforeAll(async () => {
  await initCrypto();
});

const bytes = (n: number) => new TextEncoder().encode(`message ${n}`);

describe('BatchSigner', () => {
  it('signs the messages of one turn under one signature; the next turn starts a new batch', async () => {
    const key = generateServiceKeys('broker').sign;
    const signer = new BatchSigner();
    const first = await Promise.all([0, 1, 2].map((n) => signer.sign(n === 2 ? 'receipt' : 'delivery', bytes(n), key)));
    const second = await signer.sign('delivery', bytes(3), key);
    expect(signer.counts).toEqual({ signatures: 2, messages: 4 });
    expect(first.map((h) => [parseBatchProof(h).size, parseBatchProof(h).index])).toEqual([
      [3, 0],
      [3, 1],
      [3, 2],
    ]);
    expect(parseBatchProof(second)).toMatchObject({ size: 1, index: 0, path: [] });
    const roots = new VerifiedRoots();
    first.forEach((h, n) =>
      verifyBatchProof(n === 2 ? 'receipt' : 'delivery', bytes(n), parseBatchProof(h), key.publicKey, roots),
    );
    verifyBatchProof('delivery', bytes(3), parseBatchProof(second), key.publicKey, roots);
    expect(roots.size).toBe(2);
  });

  it('a full batch is signed at once; messages under two keys get one tree per key', async () => {
    const a = generateServiceKeys('broker').sign;
    const b = generateServiceKeys('broker', 2).sign;
    const signer = new BatchSigner(2);
    const full = [signer.sign('delivery', bytes(0), a), signer.sign('delivery', bytes(1), a)];
    expect(signer.counts.signatures).toBe(1); // before the turn ends
    const mixed = await Promise.all([signer.sign('delivery', bytes(2), a), signer.sign('delivery', bytes(3), b)]);
    expect((await Promise.all(full)).map((h) => parseBatchProof(h).size)).toEqual([2, 2]);
    expect(mixed.map((h) => [parseBatchProof(h).kid, parseBatchProof(h).size])).toEqual([
      [a.kid, 1],
      [b.kid, 1],
    ]);
    expect(() => new BatchSigner(0)).toThrow(TypeError);
  });
});
