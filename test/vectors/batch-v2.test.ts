// Signature version 2 (docs/wire-format.md, "Batch signatures") against test/vectors/batch-v2.json: batches of 1, 2,
// 3 and 5 messages signed by the product byte for byte, and every header verified; the refused cases (tampered
// paths, indices, sizes, signatures, swapped leaves, a receipt passed off as a delivery) refused with E_SIGNATURE.
// Each case is also re-derived from the document alone: leaf and node hashes, MTH and PATH written recursively from
// RFC 9162 §2.1, the tree head, libsodium's signature, the header text, and a recursive path check.
// UPDATE_VECTORS=1 rewrites batch-v2.json from the specs below; otherwise a difference fails the test.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/crypto/keyring.js';
import { generateServiceKeys, publicRecords, signingKeyFromSeed } from '../../src/crypto/keys.js';
import { sealEnvelopeBytes } from '../../src/envelope/seal.js';
import { verifyDelivery } from '../../src/sdk/delivery.js';
import { merkleTree, rootFromInclusionPath } from '../../src/crypto/merkle.js';
import { getSodium, initCrypto } from '../../src/crypto/sodium.js';
import {
  batchLeafHash,
  parseBatchProof,
  signBatch,
  treeHeadMessage,
  verifyBatchProof,
  VerifiedRoots,
  type SignedKind,
} from '../../src/envelope/batch-sig.js';

const FILE = new URL('./batch-v2.json', import.meta.url);
const KID = 'broker:sig:1';
const SEED = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'; // RFC 8032 §7.1 TEST 1

interface Leaf {
  kind: SignedKind;
  text: string;
}
interface Batch {
  name: string;
  leaves: Leaf[];
  leafHashes: string[];
  root: string;
  treeHead: string;
  signature: string;
  headers: string[];
}
interface Refused {
  name: string;
  kind: SignedKind;
  text: string;
  header: string;
  message: string;
}
interface Vectors {
  kid: string;
  seed: string;
  publicKey: string;
  batches: Batch[];
  refused: Refused[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const utf8 = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const signer = () => signingKeyFromSeed(KID, Buffer.from(SEED, 'hex'));

function receipt(n: number): Leaf {
  const hash = createHash('sha256').update(`ingest-${n}`).digest('base64url');
  return {
    kind: 'receipt',
    text: `{"v":1,"id":"vec-msg-${n}","hash":"${hash}","status":"accepted","deliveries":2,"at":170000000000${n}}`,
  };
}
function delivery(n: number, to: string): Leaf {
  return {
    kind: 'delivery',
    text: `{"v":1,"id":"vec-msg-${n}.${to}","iss":"broker","note":"stands for envelope bytes"}`,
  };
}

const SPECS: { name: string; leaves: Leaf[] }[] = [
  { name: 'batch-of-1', leaves: [receipt(1)] },
  { name: 'batch-of-2', leaves: [delivery(2, 'ehr'), delivery(2, 'billing')] },
  { name: 'batch-of-3', leaves: [delivery(3, 'ehr'), delivery(3, 'billing'), receipt(2)] },
  {
    name: 'batch-of-5',
    leaves: [delivery(4, 'ehr'), delivery(4, 'billing'), delivery(4, 'notification'), receipt(3), receipt(4)],
  },
];

/** Replaces field `i` of a v2 header (v2 . kid . size . index . sig . path). */
function withField(header: string, i: number, value: string): string {
  const parts = header.split('.');
  parts[i] = value;
  return parts.join('.');
}
const pathOf = (header: string): Buffer => Buffer.from(header.split('.')[5]!, 'base64url');
const withPath = (header: string, path: Buffer): string => withField(header, 5, path.toString('base64url'));
function flipChar(text: string, at: number): string {
  const c = text[at] === 'A' ? 'B' : 'A';
  return text.slice(0, at) + c + text.slice(at + 1);
}

function build(): Vectors {
  const key = signer();
  const batches: Batch[] = SPECS.map(({ name, leaves }) => {
    const hashes = leaves.map((l) => batchLeafHash(l.kind, utf8(l.text)));
    const { root } = merkleTree(hashes);
    const head = treeHeadMessage(KID, leaves.length, root);
    const headers = signBatch(
      leaves.map((l) => ({ kind: l.kind, bytes: utf8(l.text) })),
      key,
    );
    return {
      name,
      leaves,
      leafHashes: hashes.map(hex),
      root: hex(root),
      treeHead: hex(head),
      signature: headers[0]!.split('.')[4]!,
      headers,
    };
  });
  const five = batches[3]!;
  const one = batches[0]!;
  const h = (i: number) => five.headers[i]!;
  const leaf = (i: number) => five.leaves[i]!;
  const path2 = h(2).split('.')[5]!;
  const extra = pathOf(h(2)).subarray(0, 32);
  const refused: Refused[] = [
    {
      name: 'path-hash-changed',
      ...leaf(2),
      header: withField(h(2), 5, flipChar(path2, 0)),
      message: 'batch signature does not verify with the named key',
    },
    {
      name: 'path-hash-dropped',
      ...leaf(2),
      header: withPath(h(2), pathOf(h(2)).subarray(0, 64)),
      message: 'batch signature path does not fit its index and size',
    },
    {
      name: 'path-hash-added',
      ...leaf(4),
      header: withPath(h(4), Buffer.concat([pathOf(h(4)), extra])),
      message: 'batch signature path does not fit its index and size',
    },
    {
      name: 'index-changed',
      ...leaf(2),
      header: withField(h(2), 3, '3'),
      message: 'batch signature does not verify with the named key',
    },
    {
      name: 'index-not-below-size',
      ...leaf(4),
      header: withField(h(4), 3, '5'),
      message: 'batch signature index is malformed',
    },
    {
      name: 'size-smaller',
      ...leaf(2),
      header: withField(h(2), 2, '4'),
      message: 'batch signature path does not fit its index and size',
    },
    {
      name: 'size-larger',
      ...leaf(4),
      header: withField(h(4), 2, '6'),
      message: 'batch signature path does not fit its index and size',
    },
    {
      name: 'size-with-leading-zero',
      ...leaf(2),
      header: withField(h(2), 2, '05'),
      message: 'batch signature size is malformed',
    },
    { name: 'swapped-leaf', ...leaf(1), header: h(3), message: 'batch signature does not verify with the named key' },
    {
      name: 'receipt-as-delivery',
      kind: 'delivery',
      text: leaf(3).text,
      header: h(3),
      message: 'batch signature does not verify with the named key',
    },
    {
      name: 'signature-changed',
      ...leaf(0),
      header: withField(h(0), 4, flipChar(five.signature, 10)),
      message: 'batch signature does not verify with the named key',
    },
    {
      name: 'other-kid',
      ...leaf(0),
      header: withField(h(0), 1, 'broker:sig:2'),
      message: 'batch signature does not verify with the named key',
    },
    {
      name: 'batch-of-1-with-a-path',
      ...one.leaves[0]!,
      header: withPath(one.headers[0]!, extra),
      message: 'batch signature path does not fit its index and size',
    },
    { name: 'not-v2', ...leaf(0), header: `v3${h(0).slice(2)}`, message: 'batch signature header is malformed' },
  ];
  return { kid: KID, seed: SEED, publicKey: hex(key.publicKey), batches, refused };
}

let v: Vectors;

beforeAll(async () => {
  await initCrypto();
  if (process.env['UPDATE_VECTORS'] === '1') writeFileSync(FILE, `${JSON.stringify(build(), null, 2)}\n`);
  if (!existsSync(FILE))
    throw new Error('test/vectors/batch-v2.json is missing: run UPDATE_VECTORS=1 npx vitest run test/vectors');
  v = JSON.parse(readFileSync(FILE, 'utf8')) as Vectors;
});

// ---- The independent reading of docs/wire-format.md "Batch signatures" (no product code below this line) ----
const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
const docLeaf = (kind: string, bytes: Uint8Array): Buffer =>
  sha256(Buffer.from([0]), utf8(`phi-broker/v2/${kind}`), Buffer.from([0]), bytes);
const docNode = (l: Uint8Array, r: Uint8Array): Buffer => sha256(Buffer.from([1]), l, r);
const largestPow2Below = (n: number): number => 2 ** Math.ceil(Math.log2(n) - 1);
/** MTH(D[n]), RFC 9162 §2.1.1. */
function mth(d: Buffer[]): Buffer {
  if (d.length === 1) return d[0]!;
  const k = largestPow2Below(d.length);
  return docNode(mth(d.slice(0, k)), mth(d.slice(k)));
}
/** PATH(m, D[n]), RFC 9162 §2.1.3.1. */
function docPath(m: number, d: Buffer[]): Buffer[] {
  if (d.length === 1) return [];
  const k = largestPow2Below(d.length);
  return m < k ? [...docPath(m, d.slice(0, k)), mth(d.slice(k))] : [...docPath(m - k, d.slice(k)), mth(d.slice(0, k))];
}
/** The root a path gives, by the same recursion as PATH: undefined when its length does not fit (m, n). */
function docRoot(m: number, n: number, leaf: Buffer, path: Buffer[]): Buffer | undefined {
  if (n === 1) return path.length === 0 ? leaf : undefined;
  if (path.length === 0) return undefined;
  const k = largestPow2Below(n);
  const sibling = path[path.length - 1]!;
  const rest = path.slice(0, -1);
  const sub = m < k ? docRoot(m, k, leaf, rest) : docRoot(m - k, n - k, leaf, rest);
  if (sub === undefined) return undefined;
  return m < k ? docNode(sub, sibling) : docNode(sibling, sub);
}
function docTreeHead(kid: string, size: number, root: Buffer): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(size);
  return Buffer.concat([utf8('phi-broker/v2/tree-head'), Buffer.from([0]), utf8(kid), Buffer.from([0]), n, root]);
}
/** Steps 1–5 of the document's verification, for one known key; true when the message is accepted. */
function docVerify(kind: string, text: string, header: string, kid: string, publicKey: Buffer): boolean {
  const m =
    /^v2\.([a-z][a-z0-9-]*:sig:[1-9][0-9]*)\.([1-9][0-9]*)\.(0|[1-9][0-9]*)\.([A-Za-z0-9_-]{86})\.([A-Za-z0-9_-]*)$/.exec(
      header,
    );
  if (m === null || m[1] !== kid) return false;
  const [size, index] = [Number(m[2]), Number(m[3])];
  const path = Buffer.from(m[5]!, 'base64url');
  if (size > 256 || index >= size || path.length % 32 !== 0 || path.toString('base64url') !== m[5]) return false;
  const hashes = Array.from({ length: path.length / 32 }, (_, i) => path.subarray(32 * i, 32 * i + 32));
  const root = docRoot(index, size, docLeaf(kind, utf8(text)), hashes);
  if (root === undefined) return false;
  return getSodium().crypto_sign_verify_detached(
    Buffer.from(m[4]!, 'base64url'),
    docTreeHead(kid, size, root),
    publicKey,
  );
}

describe('batch signature vectors (signature version 2)', () => {
  it('the product signs each batch to the exact headers and hashes recorded, and verifies every header', () => {
    expect(build()).toEqual(v);
    const pk = Buffer.from(v.publicKey, 'hex');
    for (const b of v.batches) {
      const roots = new VerifiedRoots();
      b.leaves.forEach((l, i) => {
        const proof = parseBatchProof(b.headers[i]!);
        expect({ name: b.name, index: proof.index, size: proof.size }).toEqual({
          name: b.name,
          index: i,
          size: b.leaves.length,
        });
        expect(() => verifyBatchProof(l.kind, utf8(l.text), proof, pk, roots)).not.toThrow();
      });
      expect(roots.size).toBe(1);
    }
    expect(v.batches.map((b) => b.headers.map((h) => h.split('.')[5]!.length))).toEqual([
      [0],
      [43, 43],
      [86, 86, 43],
      [128, 128, 128, 128, 43],
    ]);
  });

  it('re-derived from the document: leaf hashes, MTH, PATH, the tree head, the signature and the header text', () => {
    const pk = Buffer.from(v.publicKey, 'hex');
    const sk = Buffer.concat([Buffer.from(v.seed, 'hex'), pk]);
    for (const b of v.batches) {
      const d = b.leaves.map((l) => docLeaf(l.kind, utf8(l.text)));
      expect(d.map((x) => x.toString('hex'))).toEqual(b.leafHashes);
      const root = mth(d);
      expect(root.toString('hex')).toBe(b.root);
      const head = docTreeHead(v.kid, d.length, root);
      expect(head.toString('hex')).toBe(b.treeHead);
      const sig = Buffer.from(getSodium().crypto_sign_detached(head, sk)).toString('base64url');
      expect(sig).toBe(b.signature);
      expect(
        b.leaves.map(
          (_, m) => `v2.${v.kid}.${d.length}.${m}.${sig}.${Buffer.concat(docPath(m, d)).toString('base64url')}`,
        ),
      ).toEqual(b.headers);
      b.leaves.forEach((l, m) => expect(docVerify(l.kind, l.text, b.headers[m]!, v.kid, pk)).toBe(true));
    }
  });

  it('every refused case is refused by the product (E_SIGNATURE, the recorded reason) and by the document', () => {
    const pk = Buffer.from(v.publicKey, 'hex');
    expect(v.refused.length).toBeGreaterThanOrEqual(14);
    for (const r of v.refused) {
      let thrown: unknown;
      try {
        verifyBatchProof(r.kind, utf8(r.text), parseBatchProof(r.header), pk, new VerifiedRoots());
      } catch (err) {
        thrown = err;
      }
      expect({ name: r.name, thrown }).toEqual({
        name: r.name,
        thrown: expect.objectContaining({ code: 'E_SIGNATURE', message: r.message }) as unknown,
      });
      expect({ name: r.name, doc: docVerify(r.kind, r.text, r.header, v.kid, pk) }).toEqual({
        name: r.name,
        doc: false,
      });
    }
  });

  it('the RFC 9162 iterative check agrees with the recursive PATH on every index of trees of 1 to 24 leaves', () => {
    for (let n = 1; n <= 24; n++) {
      const d = Array.from({ length: n }, (_, i) => docLeaf('delivery', utf8(`leaf ${i}`)));
      const { root, paths } = merkleTree(d);
      expect(Buffer.from(root).equals(mth(d))).toBe(true);
      for (let m = 0; m < n; m++) {
        expect(paths[m]!.map((p) => Buffer.from(p).toString('hex'))).toEqual(
          docPath(m, d).map((p) => p.toString('hex')),
        );
        expect(Buffer.from(rootFromInclusionPath(d[m]!, m, n, paths[m]!)!).equals(root as Buffer)).toBe(true);
        // Another index, or a path one hash short, never proves the same root. Another size can (leaf 0 of 5 and
        // of 6 walk the same spine), which is why the signed tree head holds the size.
        const variants = [
          [m + 1, n, paths[m]!],
          [m, n + 1, paths[m]!],
        ] as const;
        for (const [i, s, p] of n === 1 ? variants : [...variants, [m, n, paths[m]!.slice(1)] as const]) {
          const r = rootFromInclusionPath(d[m]!, i, s, p);
          const head = r === undefined ? undefined : Buffer.from(treeHeadMessage(KID, s, r));
          expect({ n, m, i, s, hops: p.length, same: head?.equals(treeHeadMessage(KID, n, root)) === true }).toEqual({
            n,
            m,
            i,
            s,
            hops: p.length,
            same: false,
          });
        }
      }
    }
  });

  it('a verified root is remembered: the other messages of its batch cost no signature check; a fresh cache checks it', () => {
    const pk = Buffer.from(v.publicKey, 'hex');
    const b = v.batches[3]!;
    const roots = new VerifiedRoots();
    const first = b.leaves[0]!;
    verifyBatchProof(first.kind, utf8(first.text), parseBatchProof(b.headers[0]!), pk, roots);
    // Leaf 3 with its signature zeroed: accepted only because its root's signature was verified for leaf 0.
    const zeroed = withField(b.headers[3]!, 4, Buffer.alloc(64).toString('base64url'));
    const l3 = b.leaves[3]!;
    expect(() => verifyBatchProof(l3.kind, utf8(l3.text), parseBatchProof(zeroed), pk, roots)).not.toThrow();
    expect(() => verifyBatchProof(l3.kind, utf8(l3.text), parseBatchProof(zeroed), pk, new VerifiedRoots())).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE' }) as Error,
    );
    // The cache is keyed by the public key too: another key never hits it.
    const other = Buffer.from(getSodium().crypto_sign_seed_keypair(Buffer.alloc(32, 1)).publicKey);
    expect(() => verifyBatchProof(l3.kind, utf8(l3.text), parseBatchProof(b.headers[3]!), other, roots)).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE' }) as Error,
    );
    // Bounded, least recently used out first.
    const small = new VerifiedRoots(2);
    for (const k of ['a', 'b', 'c']) small.add(k);
    expect([small.has('a'), small.has('b'), small.has('c'), small.size]).toEqual([false, true, true, 2]);
  });
});

describe('key status applies to every v2 message, its root cached or not', () => {
  it('a retired broker key is E_KEY_UNKNOWN and a revoked one E_KEY_REVOKED, after the same root verified', () => {
    const broker = generateServiceKeys('broker');
    const ehr = generateServiceKeys('ehr');
    const ring = new Keyring(ehr, publicRecords(broker));
    const seal = (n: number) =>
      sealEnvelopeBytes({
        id: `key-status-${n}.ehr`,
        iss: 'broker',
        iat: 1_700_000_000_000,
        typ: 'Patient',
        resource: { resourceType: 'Patient', id: `p-${n}` },
        signer: broker.sign,
        recipients: [{ id: 'ehr', kek: ring.kekFor(ring.encryptionKeyOf('broker').kid) }],
        prov: {
          src: 'registration',
          mid: `key-status-${n}`,
          hash: 'A'.repeat(43),
          profile: 'urn:x',
          purpose: 'TREAT',
          at: 1,
        },
      });
    const bytes = [seal(1), seal(2), seal(3)];
    const headers = signBatch(
      bytes.map((b) => ({ kind: 'delivery' as const, bytes: b })),
      broker.sign,
    );
    const kids = new Set([broker.sign.kid]);
    const roots = new VerifiedRoots();
    expect(verifyDelivery(bytes[0]!, headers[0], ring, kids, roots).id).toBe('key-status-1.ehr');
    expect(roots.size).toBe(1);
    // A header naming another kid than the envelope is refused before any key is used.
    const otherKid = headers[1]!.replace(`v2.${broker.sign.kid}.`, 'v2.broker:sig:9.');
    expect(() => verifyDelivery(bytes[1]!, otherKid, ring, kids, roots)).toThrow(
      expect.objectContaining({ code: 'E_SIGNATURE', path: 'kid' }) as Error,
    );
    ring.revoke(broker.sign.kid, 0);
    expect(() => verifyDelivery(bytes[1]!, headers[1], ring, kids, roots)).toThrow(
      expect.objectContaining({ code: 'E_KEY_REVOKED' }) as Error,
    );
    const ring2 = new Keyring(ehr, publicRecords(broker));
    expect(verifyDelivery(bytes[1]!, headers[1], ring2, kids, roots).id).toBe('key-status-2.ehr');
    ring2.retire(broker.sign.kid);
    expect(() => verifyDelivery(bytes[2]!, headers[2], ring2, kids, roots)).toThrow(
      expect.objectContaining({ code: 'E_KEY_UNKNOWN' }) as Error,
    );
  });
});
