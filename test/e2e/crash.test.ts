// A broker process killed with SIGKILL mid-stream and started again loses nothing and duplicates nothing
// at the subscriber: JetStream redelivers the unacknowledged ingest messages, the replay cache recognises
// them as the broker's own redeliveries, deliveries keep their Nats-Msg-Id, and the SDK de-duplicates; the
// registry's group-committed writes per patient end with each message counted once.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { readJwks, readServiceKeys } from '../../src/runtime/key-files.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { existingBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { RegistryStore } from '../../src/registry/store.js';
import { KV_BUCKETS } from '../../src/wire/names.js';
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
    env: { ...process.env, ...nats.env, PHI_BROKER_ACK_WAIT_MS: '2000', PHI_BROKER_HEALTH_PORT: '0' },
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

it('SIGKILL while registry writes are group-committed per patient: each patient counted once per message', async () => {
  // Four patients, 100 messages each, all in flight together: the broker batches each patient's observations into
  // one compare-and-set (src/registry/store.ts), and is killed while those writes go on. 100 stays under RECENT_IDS,
  // so every redelivered message must be recognised in its patient's record.
  const PATIENTS = 4;
  const EACH = 100;
  const running = brokers.find((b) => b.exitCode === null && b.signalCode === null) ?? (await startBroker());
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
  const reader = await nats.connectAs(ADMIN_IDENTITY, 'registry reader');
  const store = await RegistryStore.open(reader);
  const jsm = await reader.jetstreamManager();
  const writesBefore = (await jsm.streams.info(`KV_${KV_BUCKETS.registry}`)).state.last_seq;
  const handled = new Map<string, number>();
  const waiter = new Waiter();
  // The first test's subscription is closed: only this test's Patients arrive here.
  await sub.subscribe('Patient', (d) => {
    handled.set(d.provenance.messageId, (handled.get(d.provenance.messageId) ?? 0) + 1);
    waiter.signal();
  });
  const results: Promise<PublishResult>[] = [];
  for (let i = 0; i < PATIENTS * EACH; i++)
    results.push(
      pub.publish({ resourceType: 'Patient', id: `group-${i % PATIENTS}`, name: [{ family: `Grouptest${i}` }] }),
    );
  await waiter.until(() => handled.size >= 50, 60_000, 'the first deliveries');
  running.kill('SIGKILL');
  await exited(running);
  await startBroker();
  const settled = await Promise.all(results);
  expect(settled.filter((r) => r.status !== 'accepted')).toEqual([]);
  await waiter.until(() => handled.size === PATIENTS * EACH, 60_000, 'all deliveries');
  expect([...handled.values()].filter((n) => n !== 1)).toEqual([]);
  expect(new Set(settled.map((r) => r.id))).toEqual(new Set(handled.keys()));

  const secrets = await existingBrokerSecrets(
    parseConfig({ dataDir, subjectsDir: join(ROOT, 'subjects'), profilesDir: join(ROOT, 'fhir-profiles') }),
  );
  for (let p = 0; p < PATIENTS; p++) {
    const record = await store.get(patientPseudonym(secrets, `Patient/group-${p}`));
    expect(record?.services['registration']?.source?.count, `patient ${p} source`).toBe(EACH);
    expect(record?.services['notification']?.recipient?.count, `patient ${p} notification`).toBe(EACH);
    // Every recipient got every message about the patient (the same shape each time): counted once each.
    for (const [service, s] of Object.entries(record?.services ?? {}))
      if (s.recipient !== undefined) expect(s.recipient.count, `patient ${p} ${service}`).toBe(EACH);
    expect(record?.recent.length).toBe(EACH);
  }
  // Fewer registry writes than messages: observations were committed together.
  const writes = (await jsm.streams.info(`KV_${KV_BUCKETS.registry}`)).state.last_seq - writesBefore;
  expect(writes).toBeGreaterThan(0);
  expect(writes).toBeLessThan(PATIENTS * EACH);
  expect(brokerLogs).not.toMatch(/Grouptest/);
  await reader.close();
  await sub.close();
  await pub.close();
});
