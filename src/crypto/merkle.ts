// Merkle hash trees as RFC 9162 §2.1 (Certificate Transparency v2; the same tree as RFC 6962 §2.1) defines them,
// with SHA-256 (FIPS 180-4): leaf = SHA-256(0x00 ‖ leaf input), node = SHA-256(0x01 ‖ left ‖ right), a tree of n
// leaves split at the largest power of two below n. Used to sign a batch of messages with one signature
// (docs/wire-format.md, "Batch signatures").
import { hash } from 'node:crypto';

export const HASH_BYTES = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
/** Scratch for a node's input: 0x01 ‖ left ‖ right (one-shot hashing is about twice as fast as createHash here). */
const NODE_INPUT = Buffer.alloc(1 + 2 * HASH_BYTES);

/** SHA-256(0x00 ‖ parts…): the leaf hash of the concatenated parts (RFC 9162 §2.1.1). */
export function leafHash(...parts: readonly Uint8Array[]): Uint8Array {
  return hash('sha256', Buffer.concat([LEAF_PREFIX, ...parts]), 'buffer');
}

/** SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_BYTES || right.length !== HASH_BYTES) throw new TypeError('nodeHash: two 32-byte hashes');
  NODE_INPUT[0] = 0x01;
  NODE_INPUT.set(left, 1);
  NODE_INPUT.set(right, 1 + HASH_BYTES);
  return hash('sha256', NODE_INPUT, 'buffer');
}

/** The largest power of two smaller than n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export interface MerkleTree {
  /** MTH(D[n]), the tree head. */
  readonly root: Uint8Array;
  /** PATH(m, D[n]) for each leaf m, nearest sibling first (RFC 9162 §2.1.3.1). */
  readonly paths: readonly (readonly Uint8Array[])[];
}

/** The root and every leaf's inclusion path of a tree over 1 or more leaf hashes. */
export function merkleTree(leaves: readonly Uint8Array[]): MerkleTree {
  if (leaves.length === 0) throw new TypeError('merkleTree: at least one leaf');
  const paths: Uint8Array[][] = leaves.map(() => []);
  // Post-order: the siblings deeper in the tree are pushed before the ones nearer the root, as PATH lists them.
  const build = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) return leaves[lo]!;
    const mid = lo + split(hi - lo);
    const left = build(lo, mid);
    const right = build(mid, hi);
    for (let i = lo; i < mid; i++) paths[i]!.push(right);
    for (let i = mid; i < hi; i++) paths[i]!.push(left);
    return nodeHash(left, right);
  };
  return { root: build(0, leaves.length), paths };
}

/**
 * The root that `path` proves leaf `index` of a tree of `size` leaves into, or undefined when the path cannot be
 * one (RFC 9162 §2.1.3.2: index out of range, a path too short or too long for the index and size).
 */
export function rootFromInclusionPath(
  leaf: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
): Uint8Array | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}
