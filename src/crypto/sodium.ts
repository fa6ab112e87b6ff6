// The libsodium-wrappers handle (libsodium compiled to WebAssembly). `initCrypto()` awaits `sodium.ready` once per
// process; every other function in src/crypto and src/envelope is synchronous after that and throws a TypeError
// (a programming mistake, not bad input) when called before it.
import sodium from 'libsodium-wrappers';

let ready = false;

/** Loads libsodium once; safe to call many times. Must resolve before any sealing, opening or key work. */
export async function initCrypto(): Promise<void> {
  if (ready) return;
  await sodium.ready;
  ready = true;
}

/** The ready libsodium instance. */
export function getSodium(): typeof sodium {
  if (!ready) throw new TypeError('initCrypto() must be awaited before using src/crypto or src/envelope');
  return sodium;
}
