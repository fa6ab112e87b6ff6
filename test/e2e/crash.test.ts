// A broker process killed with SIGKILL mid-stream and started again loses nothing and duplicates nothing
// at the subscriber: JetStream redelivers the unacknowledged ingest messages, the replay cache recognises
// them as the broker's own redeliveries, deliveries keep their Nats-Msg-Id, and the SDK de-duplicates.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { readJwks, readServiceKeys } from '../../src/runtime/key-files.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { PhiClient, type PublishResult } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { startTestNats, type TestNats } from '../helpers/nats.js';
import { ROOT, Waiter } from '../helpers/stack.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const TOTAL = 600;

let nats: TestNats;
let dataDir: string;
const brokers: ChildProcess[] = [];
let brokerLogs = '';

function startBroker(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'up', '--data-dir', dataDir, '--log-level', 'debug'], {
    env: { ...process.env, ...nats.env, PHI_BROKER_ACK_WAIT_MS: '2000' },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
  });
  brokers.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (c: Buffer) => {
      err += c.toString();
      brokerLogs += c.toString();
    });
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`broker exited ${code} before ready: ${out}\n${err}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does)`);
  await initCrypto();
  nats = await startTestNats();
  dataDir = join(nats.dir, 'data');
  // As deployed over mTLS: the admin identity provisions (`phi-broker nats-provision`), `up` runs as the broker identity.
  const admin = await nats.connectAs(ADMIN_IDENTITY, 'provision');
  await provisionStreams(
    admin,
    parseConfig({
      dataDir,
      subjectsDir: join(ROOT, 'subjects'),
      profilesDir: join(ROOT, 'fhir-profiles'),
      ackWaitMs: 2000,
    }),
  );
  await admin.close();
});

afterAll(async () => {
  for (const b of brokers) b.kill('SIGKILL');
  await Promise.all(brokers.map(exited));
  await nats?.stop();
});

it('SIGKILL mid-stream: every message delivered exactly once after restart', async () => {
  const first = await startBroker();
  const keysDir = join(dataDir, 'keys');
  const peers = readJwks(keysDir);
  const sub = await PhiClient.connect({
    nc: await nats.connectAs(serviceIdentity('notification')),
    service: 'notification',
    keys: readServiceKeys(keysDir, 'notification'),
    peers,
  });
  const pub = await PhiClient.connect({
    nc: await nats.connectAs(serviceIdentity('registration')),
    service: 'registration',
    keys: readServiceKeys(keysDir, 'registration'),
    peers,
    publishDeadlineMs: 120_000,
  });
  const handled = new Map<string, number>();
  const waiter = new Waiter();
  await sub.subscribe('Patient', (d) => {
    handled.set(d.provenance.messageId, (handled.get(d.provenance.messageId) ?? 0) + 1);
    waiter.signal();
  });

  const results: Promise<PublishResult>[] = [];
  let killed = false;
  for (let i = 0; i < TOTAL; i++) {
    results.push(
      pub.publish({
        resourceType: 'Patient',
        id: `crash-${i}`,
        name: [{ family: `Crashtest${i}` }],
        telecom: [{ system: 'phone', value: `555-01${i}` }],
      }),
    );
    if (i % 20 === 19) await new Promise((r) => setImmediate(r));
    if (!killed && handled.size >= 100) {
      first.kill('SIGKILL');
      killed = true;
      await exited(first);
      await startBroker();
    }
  }
  if (!killed) {
    // The broker was faster than the publisher: kill it anyway during the tail of the stream.
    first.kill('SIGKILL');
    await exited(first);
    await startBroker();
  }
  const settled = await Promise.all(results);
  expect(settled.filter((r) => r.status !== 'accepted')).toEqual([]);
  await waiter.until(() => handled.size === TOTAL, 60_000, 'all deliveries');
  const duplicates = [...handled.values()].filter((n) => n !== 1);
  expect(duplicates).toEqual([]);
  expect(handled.size).toBe(TOTAL);
  expect(new Set(settled.map((r) => r.id))).toEqual(new Set(handled.keys()));
  // The brokers' own logs (pino JSON on stderr) name messages by id and never carry a value.
  expect(brokerLogs.split('\n').filter((l) => l.includes('"ingest.accepted"')).length).toBeGreaterThan(TOTAL / 2);
  expect(brokerLogs).not.toMatch(/Crashtest|555-01/);
  await sub.close();
  await pub.close();
});
