// The broker's crypto-backend metric names the backend in use, as PHI_BROKER_CRYPTO chose it.
import { describe, expect, it } from 'vitest';
import { BrokerMetrics } from '../../src/broker/metrics.js';
import { cryptoChoiceFromEnv, initCrypto, selectCryptoBackend } from '../../src/crypto/sodium.js';

describe('phi_broker_crypto_backend_info', () => {
  it('is 1 with the backend in use and its libsodium as labels', async () => {
    await initCrypto('native');
    const m = new BrokerMetrics({ inflight: () => 0 });
    expect(await m.registry.getSingleMetricAsString('phi_broker_crypto_backend_info')).toMatch(
      /^phi_broker_crypto_backend_info\{backend="native",libsodium="sodium-native \d+\.\d+\.\d+"\} 1$/m,
    );
    selectCryptoBackend('wasm');
    try {
      const text = await m.registry.getSingleMetricAsString('phi_broker_crypto_backend_info');
      expect(text).toMatch(/^phi_broker_crypto_backend_info\{backend="wasm",libsodium="\d+\.\d+\.\d+"\} 1$/m);
      expect(text).not.toContain('backend="native"');
    } finally {
      selectCryptoBackend('native');
    }
  });
});

describe('PHI_BROKER_CRYPTO', () => {
  it('chooses auto when unset or empty, takes native, wasm or auto, and refuses anything else', () => {
    expect(cryptoChoiceFromEnv({})).toBe('auto');
    expect(cryptoChoiceFromEnv({ PHI_BROKER_CRYPTO: '' })).toBe('auto');
    for (const v of ['native', 'wasm', 'auto'] as const) expect(cryptoChoiceFromEnv({ PHI_BROKER_CRYPTO: v })).toBe(v);
    expect(() => cryptoChoiceFromEnv({ PHI_BROKER_CRYPTO: 'openssl' })).toThrow(
      new TypeError('PHI_BROKER_CRYPTO must be native, wasm or auto'),
    );
  });
});
