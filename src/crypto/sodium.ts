// Loads libsodium once per process and chooses the crypto backend (src/crypto/backend.ts): native (sodium-native)
// when it loads, else wasm (libsodium-wrappers); PHI_BROKER_CRYPTO=native|wasm forces one (docs/configuration.md).
// Every other function in src/crypto and src/envelope is synchronous after `initCrypto()` and throws a TypeError (a
// programming mistake, not bad input) when called before it.
import sodium from 'libsodium-wrappers';
import { loadNativeBackend, wasmBackend, type CryptoBackend, type CryptoBackendName } from './backend.js';

export type { CryptoBackend, CryptoBackendName } from './backend.js';

/** `auto` (the default): native where it loads, else wasm. */
export type CryptoBackendChoice = CryptoBackendName | 'auto';

export const CRYPTO_ENV = 'PHI_BROKER_CRYPTO';

let ready = false;
let backend: CryptoBackend | undefined;
let nativeError: Error | undefined;

/** The choice PHI_BROKER_CRYPTO makes; a TypeError for a value that is not native, wasm or auto. */
export function cryptoChoiceFromEnv(env: NodeJS.ProcessEnv = process.env): CryptoBackendChoice {
  const value = env[CRYPTO_ENV];
  if (value === undefined || value === '') return 'auto';
  if (value === 'native' || value === 'wasm' || value === 'auto') return value;
  throw new TypeError(`${CRYPTO_ENV} must be native, wasm or auto`);
}

/**
 * Loads libsodium once and chooses the backend; safe to call many times (the first choice stands). Must resolve
 * before any sealing, opening or key work. `native` fails when sodium-native cannot load.
 */
export async function initCrypto(choice: CryptoBackendChoice = cryptoChoiceFromEnv()): Promise<void> {
  if (ready) return;
  await sodium.ready; // getSodium() and the wasm backend need it whichever backend is chosen
  backend = selectCryptoBackend(choice);
  ready = true;
}

/**
 * Makes `choice` the backend in use and returns it (initCrypto's selection; tests run vectors under both).
 * Throws when `native` is asked for and cannot load.
 */
export function selectCryptoBackend(choice: CryptoBackendChoice): CryptoBackend {
  if (choice === 'wasm') return (backend = wasmBackend);
  const native = loadNativeBackend();
  if (native instanceof Error) {
    nativeError = native;
    if (choice === 'native')
      throw new TypeError(`${CRYPTO_ENV}=native but sodium-native cannot load: ${native.message}`, { cause: native });
    return (backend = wasmBackend);
  }
  return (backend = native);
}

/** The backend in use. */
export function cryptoBackend(): CryptoBackend {
  if (backend === undefined || !ready)
    throw new TypeError('initCrypto() must be awaited before using src/crypto or src/envelope');
  return backend;
}

/** Why the native backend did not load, when auto fell back to wasm (for the start-up log line). */
export function nativeLoadError(): Error | undefined {
  return nativeError;
}

/** The ready libsodium-wrappers instance (WebAssembly), whichever backend is in use. */
export function getSodium(): typeof sodium {
  if (!ready) throw new TypeError('initCrypto() must be awaited before using src/crypto or src/envelope');
  return sodium;
}
