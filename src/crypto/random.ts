// Random bytes for nonces and keys, from node:crypto (the OS CSPRNG via OpenSSL), drawn from pooled chunks refilled
// 64 KiB at a time with randomFillSync. libsodium-wrappers' own RNG costs ~100 µs per call under Node, so nothing
// on the hot path calls it. A RandomSource is injectable so that test vectors can fix every nonce and key.
import { randomFillSync } from 'node:crypto';

/** Returns `n` fresh random bytes. The caller may keep the array; the source never hands the same bytes out twice. */
export type RandomSource = (n: number) => Uint8Array;

const CHUNK = 64 * 1024;
let chunk = new Uint8Array(0);
let offset = 0;

/**
 * The default source. Returns views into a chunk that is never refilled in place (a fresh chunk replaces it when
 * spent), so a returned array is never overwritten later.
 */
export const randomBytes: RandomSource = (n) => {
  if (!Number.isSafeInteger(n) || n < 0) throw new TypeError('randomBytes: n must be a non-negative integer');
  if (n > CHUNK / 4) return randomFillSync(new Uint8Array(n));
  if (offset + n > chunk.length) {
    chunk = randomFillSync(new Uint8Array(CHUNK));
    offset = 0;
  }
  const out = chunk.subarray(offset, offset + n);
  offset += n;
  return out;
};

/**
 * A source that replays fixed bytes in order (test vectors). Throws when asked for more than it holds;
 * `remaining()` lets a test check that a vector consumed exactly what it recorded.
 */
export function fixedRandom(bytes: Uint8Array): RandomSource & { remaining(): number } {
  let pos = 0;
  const source = (n: number): Uint8Array => {
    if (pos + n > bytes.length) throw new TypeError('fixedRandom: recorded random bytes exhausted');
    const out = bytes.slice(pos, pos + n);
    pos += n;
    return out;
  };
  return Object.assign(source, { remaining: () => bytes.length - pos });
}

/**
 * Writes `n` fresh bytes of the default source into `target` at `at`: what `target.set(randomBytes(n), at)`
 * does, without creating a view per call (the leaf cipher draws one 24-byte nonce per sealed leaf this way).
 */
export function takeRandomInto(target: Uint8Array, at: number, n: number): void {
  if (n > CHUNK / 4) {
    target.set(randomBytes(n), at);
    return;
  }
  if (!Number.isSafeInteger(n) || n < 0 || at + n > target.length)
    throw new RangeError('takeRandomInto: n out of range or target too small');
  if (offset + n > chunk.length) {
    chunk = randomFillSync(new Uint8Array(CHUNK));
    offset = 0;
  }
  for (let i = 0; i < n; i++) target[at + i] = chunk[offset + i] as number;
  offset += n;
}
