// Connection hygiene (src/sdk/client.ts PhiClient.connect): without TLS the SDK refuses to connect unless the
// explicit development option `insecure: true` is given, and then it says so loudly — a warning log on every
// connect, or a process warning when no logger was given. (The mTLS side is in test/e2e/mtls.test.ts.)
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateServiceKeys, publicRecords, type ServiceKeys } from '../../src/crypto/keys.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { createLogger } from '../../src/log/log.js';
import { PhiClient } from '../../src/sdk/client.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';

let nats: TestNats;
let keys: ServiceKeys;
let broker: ServiceKeys;

beforeAll(async () => {
  await initCrypto();
  nats = await startTestNats({ tls: false }); // the plaintext path is what this file tests
  keys = generateServiceKeys('registration');
  broker = generateServiceKeys('broker');
});

afterAll(async () => {
  await nats.stop();
});

class Lines extends Writable {
  readonly records: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    for (const l of chunk.toString('utf8').split('\n'))
      if (l !== '') this.records.push(JSON.parse(l) as Record<string, unknown>);
    cb();
  }
}

const REFUSAL =
  /^service registration: refusing to connect to NATS without TLS; give tls \(CA, certificate and key files\), or insecure: true for local development only$/;

describe('PhiClient.connect without TLS', () => {
  it('refuses a plaintext connection it is handed (E_CONFIG_INVALID naming the fix) and leaves it to its owner', async () => {
    const nc = await nats.connect('plain');
    const err = await PhiClient.connect({ nc, service: 'registration', keys, peers: publicRecords(broker) }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'E_CONFIG_INVALID' });
    expect((err as Error).message).toMatch(REFUSAL);
    expect(nc.isClosed()).toBe(false);
    await nc.close();
  });

  it('refuses to open a plaintext connection itself (servers without tls)', async () => {
    const err = await PhiClient.connect({
      servers: nats.server.url,
      service: 'registration',
      keys,
      peers: publicRecords(broker),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_CONFIG_INVALID' });
    expect((err as Error).message).toMatch(REFUSAL);
  });

  it('refuses nc together with servers/tls (a caller mistake: TypeError)', async () => {
    const nc = await nats.connect('both');
    await expect(
      PhiClient.connect({
        nc,
        servers: nats.server.url,
        service: 'registration',
        keys,
        peers: publicRecords(broker),
        insecure: true,
      }),
    ).rejects.toThrow(TypeError);
    await nc.close();
  });

  it('with insecure: true it connects, and logs a warning on every connect', async () => {
    const lines = new Lines();
    const logger = createLogger({ level: 'info', destination: lines });
    for (let i = 0; i < 2; i += 1) {
      const client = await PhiClient.connect({
        servers: nats.server.url,
        service: 'registration',
        keys,
        peers: publicRecords(broker),
        insecure: true,
        logger,
      });
      await client.close();
    }
    const warnings = lines.records.filter((r) => r['event'] === 'sdk.transport.insecure');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ level: 40, service: 'registration' });
    expect(String(warnings[0]?.['msg'])).toMatch(/^INSECURE: service registration is connected to NATS without TLS/);
  });

  it('with insecure: true and no logger it emits a process warning (code PHI_BROKER_INSECURE_TRANSPORT)', async () => {
    const warned = new Promise<Error & { code?: string }>((resolve) => process.once('warning', resolve));
    const nc = await nats.connect('insecure-no-logger');
    const client = await PhiClient.connect({
      nc,
      service: 'registration',
      keys,
      peers: publicRecords(broker),
      insecure: true,
    });
    const w = await warned;
    expect(w.code).toBe('PHI_BROKER_INSECURE_TRANSPORT');
    expect(w.message).toMatch(/^INSECURE: service registration/);
    await client.close();
    await nc.close();
  });
});
