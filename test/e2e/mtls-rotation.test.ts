// Certificate rotation under a steady publish load (issue 3): `certs rotate` issues new certificates from the
// same CA, nats-server reloads on SIGHUP, every client (broker, publisher, subscriber) reconnects with its new
// certificate mid-load — as it does when the old one is about to expire — and every message published is
// delivered exactly once to the subscriber's handler.
import { connect as tcpConnect } from 'node:net';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readServiceKeys } from '../../src/runtime/key-files.js';
import { createLogger } from '../../src/log/log.js';
import { PhiClient, type PublishResult } from '../../src/sdk/client.js';
import { serviceIdentity } from '../../src/tls/identity.js';
import { issueAll } from '../../src/tls/store.js';
import { startMtlsStack, type MtlsStack } from '../helpers/mtls.js';
import { LogCapture, Waiter } from '../helpers/stack.js';

const waiter = new Waiter();
const logs = new LogCapture();
const logger = createLogger({ level: 'info', destination: logs });
let stack: MtlsStack;

beforeAll(async () => {
  stack = await startMtlsStack(() => waiter.signal());
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

/** Forces a reconnect (nats.js reads its certificate files again) and resolves once it is back. */
async function reconnect(nc: NatsConnection): Promise<void> {
  const status = nc.status();
  const back = (async () => {
    for await (const s of status) if (s.type === 'reconnect') return;
  })();
  await nc.reconnect();
  await back;
}

/** The serial of the certificate the server presents now (INFO in plaintext, then the TLS upgrade). */
async function presentedServerSerial(): Promise<string> {
  const files = stack.layout.identity(serviceIdentity('registration'));
  const socket = tcpConnect(stack.server.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    let info = '';
    socket.on('error', reject);
    const onData = (c: Buffer): void => {
      info += c.toString('utf8');
      if (info.includes('\r\n')) {
        socket.off('data', onData);
        resolve();
      }
    };
    socket.on('data', onData);
  });
  const tls = tlsConnect({
    socket,
    servername: 'localhost',
    ca: readFileSync(files.caFile),
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
  });
  await new Promise<void>((resolve, reject) => {
    tls.once('secureConnect', () => resolve());
    tls.once('error', reject);
  });
  const serial = tls.getPeerCertificate().serialNumber;
  tls.destroy();
  return serial.toLowerCase().replace(/^0+/, '');
}

describe('certificate rotation under load', () => {
  it('rotate + SIGHUP + every client reconnecting mid-load: each message delivered exactly once', async () => {
    const { nc: brokerNc } = await stack.startBroker(logger);
    const pubNc = await stack.connectAs(serviceIdentity('registration'));
    const subNc = await stack.connectAs(serviceIdentity('notification'));
    const peers = stack.peers;
    const pub = await PhiClient.connect({
      nc: pubNc,
      service: 'registration',
      keys: readServiceKeys(stack.keysDir, 'registration'),
      peers,
      publishDeadlineMs: 20_000,
      logger,
    });
    const sub = await PhiClient.connect({
      nc: subNc,
      service: 'notification',
      keys: readServiceKeys(stack.keysDir, 'notification'),
      peers,
      logger,
    });
    const got = new Map<string, number>();
    await sub.subscribe('Patient', ({ provenance }) => {
      got.set(provenance.messageId, (got.get(provenance.messageId) ?? 0) + 1);
      waiter.signal();
    });

    const results: PublishResult[] = [];
    let rotated = false;
    let n = 0;
    const load = (async () => {
      // Steady load: batches of 4 concurrent publishes, until 40 more have gone out after the rotation.
      let afterRotation = 0;
      while (!rotated || afterRotation < 40) {
        const batch = await Promise.all(
          [0, 1, 2, 3].map(() => {
            n += 1;
            return pub.publish({ resourceType: 'Patient', id: `p-rot-${n}`, name: [{ family: `Rotahill${n}` }] });
          }),
        );
        results.push(...batch);
        if (rotated) afterRotation += batch.length;
        waiter.signal();
      }
    })();

    await waiter.until(() => results.length >= 40, 60_000, '40 publishes before the rotation');
    const serialBefore = await presentedServerSerial();
    const report = await issueAll(stack.layout, [...stack.catalog.services.keys()], {
      now: Date.now(),
      createCaIfMissing: false,
    });
    const logFrom = stack.log().length;
    stack.server.reload();
    await waiter.until(
      () => /Reloaded server configuration/.test(stack.log().slice(logFrom)),
      20_000,
      'nats-server reloaded',
    );
    await Promise.all([reconnect(brokerNc), reconnect(pubNc), reconnect(subNc)]);
    rotated = true;
    await load;

    // The server presents its new certificate, from the same CA.
    const newServer = report.issued.find((i) => i.name === 'server');
    expect(report.caCreated).toBe(false);
    expect(await presentedServerSerial()).toBe(newServer?.serial.replace(/^0+/, ''));
    expect(serialBefore).not.toBe(newServer?.serial.replace(/^0+/, ''));

    // Nothing rejected; every id published (accepted, or still awaiting its receipt) is delivered exactly once.
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const ids = results.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    await waiter.until(() => ids.every((id) => got.has(id)), 60_000, 'every message delivered');
    expect(ids.length).toBeGreaterThanOrEqual(80);
    expect([...got.values()].every((count) => count === 1)).toBe(true);
    expect(got.size).toBe(ids.length);
    expect(stack.log()).not.toMatch(/Permissions Violation/);
    await pub.close();
    await sub.close();
  }, 180_000);
});
