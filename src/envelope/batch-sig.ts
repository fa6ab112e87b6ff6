// Signature version 2 (docs/wire-format.md, "Batch signatures"): one Ed25519 signature (RFC 8032) over the head of
// an RFC 9162 §2.1 Merkle tree whose leaves are the exact bytes of a batch of broker deliveries and receipts; each
// message carries the signature, the tree size, its leaf index and its inclusion path in its Phi-Sig header.
// A reader checks the path, then the root's signature once per batch (VerifiedRoots caches verified roots).
import { fromBase64url, toBase64url } from '../crypto/base64url.js';
import type { SigningKeyPair } from '../crypto/keypairs.js';
import { HASH_BYTES, leafHash, merkleTree, rootFromInclusionPath } from '../crypto/merkle.js';
import { SIGNATURE_BYTES, signDetached, verifyDetached } from '../crypto/sign.js';
import { BrokerError } from '../wire/errors.js';

/** What a leaf is: the label in its leaf input keeps a receipt from passing for a delivery and the other way round. */
export type SignedKind = 'delivery' | 'receipt';

/** Most leaves in one tree: paths stay at most 8 hashes (342 characters). */
export const MAX_BATCH_LEAVES = 256;
export const BATCH_SIG_PREFIX = 'v2.';

const LEAF_LABEL: Record<SignedKind, Buffer> = {
  delivery: Buffer.from('phi-broker/v2/delivery\0', 'utf8'),
  receipt: Buffer.from('phi-broker/v2/receipt\0', 'utf8'),
};
const TREE_HEAD_LABEL = Buffer.from('phi-broker/v2/tree-head\0', 'utf8');
const SIGNING_KID = /^[a-z][a-z0-9-]{0,62}:sig:[1-9][0-9]{0,8}$/;
const SIZE = /^[1-9][0-9]{0,2}$/;
const INDEX = /^(?:0|[1-9][0-9]{0,2})$/;

/** One message's proof, as its Phi-Sig header carries it. */
export interface BatchProof {
  readonly kid: string;
  readonly size: number;
  readonly index: number;
  readonly sig: Uint8Array;
  readonly path: readonly Uint8Array[];
}

/** SHA-256(0x00 ‖ "phi-broker/v2/<kind>" 0x00 ‖ bytes): the leaf hash of one message's exact bytes. */
export function batchLeafHash(kind: SignedKind, bytes: Uint8Array): Uint8Array {
  return leafHash(LEAF_LABEL[kind], bytes);
}

/** The bytes the Ed25519 signature covers: "phi-broker/v2/tree-head" 0x00 ‖ kid 0x00 ‖ u32 BE size ‖ root. */
export function treeHeadMessage(kid: string, size: number, root: Uint8Array): Uint8Array {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(size);
  return Buffer.concat([TREE_HEAD_LABEL, Buffer.from(kid, 'utf8'), Buffer.from([0]), n, root]);
}

export function encodeBatchProof(p: BatchProof): string {
  return `${BATCH_SIG_PREFIX}${p.kid}.${p.size}.${p.index}.${toBase64url(p.sig)}.${toBase64url(Buffer.concat(p.path))}`;
}

/** Signs a batch with one signature: the Phi-Sig header value of each message, in the order given. */
export function signBatch(
  items: readonly { readonly kind: SignedKind; readonly bytes: Uint8Array }[],
  signer: SigningKeyPair,
): string[] {
  if (items.length === 0 || items.length > MAX_BATCH_LEAVES)
    throw new TypeError(`signBatch: 1 to ${MAX_BATCH_LEAVES} messages`);
  const { root, paths } = merkleTree(items.map((i) => batchLeafHash(i.kind, i.bytes)));
  const size = items.length;
  const sig = signDetached(treeHeadMessage(signer.kid, size, root), signer.secretKey);
  return paths.map((path, index) => encodeBatchProof({ kid: signer.kid, size, index, sig, path }));
}

export function isBatchSig(header: string | undefined): header is string {
  return header !== undefined && header.startsWith(BATCH_SIG_PREFIX);
}

function malformed(part: string): BrokerError {
  return new BrokerError('E_SIGNATURE', `batch signature ${part} is malformed`);
}

/** Parses a `v2.` Phi-Sig header value. E_SIGNATURE naming the part that is malformed. */
export function parseBatchProof(header: string): BatchProof {
  const parts = header.split('.');
  if (parts.length !== 6 || parts[0] !== 'v2') throw malformed('header');
  const [, kid, sizeText, indexText, sigText, pathText] = parts as [string, string, string, string, string, string];
  if (!SIGNING_KID.test(kid)) throw malformed('kid');
  const size = SIZE.test(sizeText) ? Number(sizeText) : 0;
  if (size < 1 || size > MAX_BATCH_LEAVES) throw malformed('size');
  const index = INDEX.test(indexText) ? Number(indexText) : -1;
  if (index < 0 || index >= size) throw malformed('index');
  const sig = fromBase64url(sigText);
  if (sig === undefined || sig.length !== SIGNATURE_BYTES) throw malformed('signature');
  const raw = fromBase64url(pathText);
  if (raw === undefined || raw.length % HASH_BYTES !== 0) throw malformed('path');
  const path: Uint8Array[] = [];
  for (let i = 0; i < raw.length; i += HASH_BYTES) path.push(raw.subarray(i, i + HASH_BYTES));
  return { kid, size, index, sig, path };
}

/** Roots whose signature verified, keyed by public key, kid, size and root: bounded, least recently used out first. */
export class VerifiedRoots {
  readonly #seen = new Map<string, true>();
  constructor(readonly capacity = 1024) {}

  has(key: string): boolean {
    if (!this.#seen.delete(key)) return false;
    this.#seen.set(key, true);
    return true;
  }

  add(key: string): void {
    this.#seen.delete(key);
    this.#seen.set(key, true);
    if (this.#seen.size > this.capacity) this.#seen.delete(this.#seen.keys().next().value as string);
  }

  get size(): number {
    return this.#seen.size;
  }
}

/**
 * Checks a v2 proof for `bytes` under `publicKey` (the key of `proof.kid`, looked up by the caller so that key
 * status applies to every message): inclusion path, then the tree head's signature unless `roots` holds it.
 */
export function verifyBatchProof(
  kind: SignedKind,
  bytes: Uint8Array,
  proof: BatchProof,
  publicKey: Uint8Array,
  roots: VerifiedRoots,
): void {
  const root = rootFromInclusionPath(batchLeafHash(kind, bytes), proof.index, proof.size, proof.path);
  if (root === undefined) throw new BrokerError('E_SIGNATURE', 'batch signature path does not fit its index and size');
  const key = `${toBase64url(publicKey)}.${proof.kid}.${proof.size}.${toBase64url(root)}`;
  if (roots.has(key)) return;
  if (!verifyDetached(treeHeadMessage(proof.kid, proof.size, root), proof.sig, publicKey))
    throw new BrokerError('E_SIGNATURE', 'batch signature does not verify with the named key');
  roots.add(key);
}
