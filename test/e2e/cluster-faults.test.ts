// Faults on the production shape (docs/deployment.md): a 3-node JetStream cluster (test/helpers/cluster.ts) with every
// stream, KV bucket and object store at R3, two `phi-broker up` processes sharing PHI_INGEST, three SDK subscribers
// counting unique message ids, and a publisher at a steady rate. `kill -9` of the PHI_INGEST stream leader mid-run,
// then its restart, and `kill -9` of one broker process mid-run: every message reaches every subscriber exactly once.
// PHI_CHAOS=1 (`npm run chaos:cluster`, part of `npm run chaos`) runs the long form: more messages, and a rolling restart of all three nodes and a
// `kill -9` of both brokers as well.
//
// The SDK's publish resends the same bytes under the same Nats-Msg-Id until JetStream acknowledges or its deadline
// passes (docs/publishing.md); a message still `not_stored` at the deadline (safe to send again) is published again
// by this test — a new message id — and counted as a resend. `stored` (acknowledged, no receipt by the deadline) is
// left to the broker, which processes it; the subscribers' counts show it arrived.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type BrokerConfig } from '../../src/config/config.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { ensureBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { ensureDevKeys, readJwks, readServiceKeys } from '../../src/runtime/key-files.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { PhiClient, type PublishResult } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY, serviceIdentity } from '../../src/tls/identity.js';
import { BROKER_ID } from '../../src/wire/ids.js';
import { KV_BUCKETS, OBJECT_STORES, STREAMS, subjects } from '../../src/wire/names.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { ROOT, Waiter } from '../helpers/stack.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const CHAOS = process.env['PHI_CHAOS'] === '1';
/** Messages per scenario, and the publisher's pace (one publish started every INTERVAL_MS). */
const TOTAL = CHAOS ? 1_500 : 150;
const INTERVAL_MS = CHAOS ? 15 : 40;
/** Publishes of one message before the test calls it lost, the n-th RESEND_BACKOFF_MS × n after the last. */
const MAX_ATTEMPTS = 4;
const RESEND_BACKOFF_MS = 250;
const SUBSCRIBERS = ['ehr', 'notification', 'billing'] as const;
const ACK_WAIT_MS = 2_000;

let cluster: TestCluster;
let config: BrokerConfig;
let admin: NatsConnection;
let pub: PhiClient;
const subs: PhiClient[] = [];
/** Per subscriber: handler calls per message id. */
const handled = new Map<string, Map<string, number>>(SUBSCRIBERS.map((s) => [s, new Map()]));
const delivered = new Waiter();
const brokers: { child: ChildProcess; exited: Promise<void> }[] = [];
let brokerLogs = '';

function startBroker(): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const child = spawn(process.execPath, [CLI, 'up', '--data-dir', config.dataDir, '--log-level', 'info'], {
    env: {
      ...process.env,
      ...cluster.env,
      PHI_BROKER_REPLICAS: '3',
      PHI_BROKER_ACK_WAIT_MS: String(ACK_WAIT_MS),
      PHI_BROKER_HEALTH_PORT: '0', // two brokers on one host: each its own free port
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT,
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const handle = { child, exited };
  brokers.push(handle);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stderr?.on('data', (c: Buffer) => (brokerLogs += c.toString()));
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready')) resolve(handle);
    });
    child.once('exit', (code) => reject(new Error(`broker exited ${code} before ready: ${out}\n${brokerLogs}`)));
  });
}

async function killBroker(handle: { child: ChildProcess; exited: Promise<void> }): Promise<void> {
  process.kill(handle.child.pid ?? -1, 'SIGKILL');
  await handle.exited;
}

const ALL_STREAMS = [
  STREAMS.ingest,
  STREAMS.deliver,
  STREAMS.quarantine,
  STREAMS.receipts,
  STREAMS.audit,
  STREAMS.disclosures,
  ...Object.values(KV_BUCKETS).map((b) => `KV_${b}`),
  `OBJ_${OBJECT_STORES.accessAnswers}`,
];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does)`);
  await initCrypto();
  const catalog = loadCatalog({ subjects: join(ROOT, 'subjects'), profiles: join(ROOT, 'fhir-profiles') });
  cluster = await startTestCluster(catalog);
  await cluster.waitForMetaLeader();
  config = parseConfig({
    dataDir: join(cluster.dir, 'data'),
    subjectsDir: join(ROOT, 'subjects'),
    profilesDir: join(ROOT, 'fhir-profiles'),
    replicas: 3,
    ackWaitMs: ACK_WAIT_MS,
  });
  // As deployed: the admin identity provisions everything at R3 (`phi-broker nats-provision`), brokers run as `up`.
  admin = await cluster.connectAs(ADMIN_IDENTITY, 'provision');
  await provisionStreams(admin, config);
  await cluster.waitForStreamLeaders(ALL_STREAMS);
  const keysDir = join(config.dataDir, 'keys');
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  ensureDevKeys(keysDir, [BROKER_ID, ...catalog.services.keys()]);
  ensureBrokerSecrets(keysDir);
  await Promise.all([startBroker(), startBroker()]);
  const peers = readJwks(keysDir);
  for (const service of SUBSCRIBERS) {
    const sub = await PhiClient.connect({
      nc: await cluster.connectAs(serviceIdentity(service)),
      service,
      keys: readServiceKeys(keysDir, service),
      peers,
    });
    const counts = handled.get(service) ?? new Map<string, number>();
    await sub.subscribe('Patient', (d) => {
      counts.set(d.provenance.messageId, (counts.get(d.provenance.messageId) ?? 0) + 1);
      delivered.signal();
    });
    subs.push(sub);
  }
  pub = await PhiClient.connect({
    nc: await cluster.connectAs(serviceIdentity('registration')),
    service: 'registration',
    keys: readServiceKeys(keysDir, 'registration'),
    peers,
    // Longer than a leader election: the SDK's own resends (same Nats-Msg-Id) cover it.
    publishDeadlineMs: 20_000,
  });
}, 120_000);

afterAll(async () => {
  await pub?.close();
  for (const s of subs) await s.close();
  for (const b of brokers) if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL');
  await Promise.all(brokers.map((b) => b.exited));
  await cluster?.stop();
});

interface Fault {
  /** After this many messages were started, `inject` runs (without pausing the publisher) … */
  readonly at: number;
  readonly inject: () => Promise<void>;
  /** … and after this many, `recover`, once `inject` has finished. */
  readonly recoverAt: number;
  readonly recover: () => Promise<void>;
}

interface Outcome {
  readonly published: number;
  readonly resends: number;
  /** Acknowledged by JetStream, no receipt by the deadline: the broker processes it later. */
  readonly storedNoReceipt: number;
  readonly failed: readonly string[];
  /** p99 of one SDK publish() call started during the fault, and of all calls. */
  readonly p99CallFaultMs: number;
  readonly p99CallAllMs: number;
  /** p99 of a message from its first send to its acceptance, resends included, first sent during the fault. */
  readonly p99MessageFaultMs: number;
}

function p99(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? 0;
}

/**
 * Publishes `TOTAL` Patients at a steady pace with `fault` injected and recovered mid-run; resolves once every
 * message has a final result. `attempts` maps every message id sent to its logical message.
 */
async function publishThrough(label: string, fault: Fault, attempts: Map<string, number>): Promise<Outcome> {
  let faultFrom = Number.POSITIVE_INFINITY;
  let faultTo = Number.POSITIVE_INFINITY;
  const durations: { start: number; ms: number }[] = [];
  const messages: { start: number; ms: number }[] = [];
  let resends = 0;
  let storedNoReceipt = 0;
  const failed: string[] = [];
  const publishOne = async (i: number): Promise<void> => {
    const first = performance.now();
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const start = performance.now();
      const r: PublishResult = await pub.publish({
        resourceType: 'Patient',
        id: `${label}-${i}`,
        name: [{ family: `Clusterfault${label}${i}` }],
        telecom: [{ system: 'phone', value: `555-07${i}` }],
      });
      durations.push({ start, ms: performance.now() - start });
      attempts.set(r.id, i);
      if (r.status === 'accepted' || r.status === 'stored') {
        if (r.status === 'stored') storedNoReceipt++;
        messages.push({ start: first, ms: performance.now() - first });
        return;
      }
      // Only `not_stored` is safe to send again; a rejection is a bug here.
      if (r.status === 'rejected') {
        failed.push(`${i}: rejected ${r.code}`);
        return;
      }
      resends++;
      // Back off (bounded) before publishing again.
      await new Promise((r) => setTimeout(r, RESEND_BACKOFF_MS * attempt));
    }
    failed.push(`${i}: not accepted after ${MAX_ATTEMPTS} attempts`);
  };
  const inFlight: Promise<void>[] = [];
  let injected: Promise<void> = Promise.resolve();
  let recovered: Promise<void> = Promise.resolve();
  for (let i = 0; i < TOTAL; i++) {
    if (i === fault.at) {
      faultFrom = performance.now();
      injected = fault.inject();
    }
    if (i === fault.recoverAt) {
      recovered = injected.then(fault.recover).then(() => {
        faultTo = performance.now();
      });
    }
    inFlight.push(publishOne(i));
    await new Promise((r) => setTimeout(r, INTERVAL_MS)); // the publisher's pace, not a wait for an event
  }
  await recovered;
  await Promise.all(inFlight);
  const during = (xs: readonly { start: number; ms: number }[]): number[] =>
    xs.filter((d) => d.start >= faultFrom && d.start <= faultTo).map((d) => d.ms);
  return {
    published: TOTAL,
    resends,
    storedNoReceipt,
    failed,
    p99CallFaultMs: p99(during(durations)),
    p99CallAllMs: p99(durations.map((d) => d.ms)),
    p99MessageFaultMs: p99(during(messages)),
  };
}

/** Deliveries stored in PHI_DELIVER per subscriber (for Patient), to count what one scenario adds. */
async function storedDeliveries(): Promise<Map<string, number>> {
  const jsm = await admin.jetstreamManager();
  const stored = new Map<string, number>();
  for (const s of SUBSCRIBERS) {
    const subject = subjects.deliver(s, 'Patient');
    const info = await jsm.streams.info(STREAMS.deliver, { subjects_filter: subject });
    stored.set(s, info.state.subjects?.[subject] ?? 0);
  }
  return stored;
}

/** Waits until every subscriber has every logical message, then counts and prints; asserts exactly-once. */
async function expectExactlyOnce(
  label: string,
  outcome: Outcome,
  attempts: Map<string, number>,
  storedBefore: Map<string, number>,
): Promise<void> {
  const ofThisRun = (counts: Map<string, number>): [string, number][] =>
    [...counts.entries()].filter(([id]) => attempts.has(id));
  const logical = (counts: Map<string, number>): Set<number> =>
    new Set(ofThisRun(counts).map(([id]) => attempts.get(id) ?? -1));
  await delivered
    .until(
      () => SUBSCRIBERS.every((s) => logical(handled.get(s) ?? new Map()).size === TOTAL),
      CHAOS ? 300_000 : 60_000,
      `${label}: every message at every subscriber`,
    )
    .catch(() => undefined); // the counts below say what is missing
  // Everything stored is handed over too: a message whose first send came back `unknown` may still have been stored.
  const storedNow = await storedDeliveries();
  await delivered
    .until(
      () =>
        SUBSCRIBERS.every(
          (s) => ofThisRun(handled.get(s) ?? new Map()).length >= (storedNow.get(s) ?? 0) - (storedBefore.get(s) ?? 0),
        ),
      10_000,
      `${label}: every stored delivery handled`,
    )
    .catch(() => undefined);
  const lines = [
    `${label}: published ${outcome.published}, resent after not_stored ${outcome.resends}, stored without a receipt by the deadline ${outcome.storedNoReceipt}`,
  ];
  for (const s of SUBSCRIBERS) {
    const counts = handled.get(s) ?? new Map<string, number>();
    const mine = ofThisRun(counts);
    const stored = (storedNow.get(s) ?? 0) - (storedBefore.get(s) ?? 0);
    const duplicates = mine.filter(([, n]) => n > 1).length;
    // A resend after an in-doubt `not_stored` whose attempt was stored after all: one message under two ids.
    const resent = mine.length - logical(counts).size;
    const lost = TOTAL - logical(counts).size;
    lines.push(
      `  ${s}: stored ${stored}, delivered unique ${mine.length}, duplicates ${duplicates}, lost ${lost}, delivered twice under a resend's new id ${resent}`,
    );
    expect(duplicates, `${label} ${s} duplicates`).toBe(0);
    expect(lost, `${label} ${s} lost`).toBe(0);
    // Nothing stored for the subscriber went undelivered, and nothing delivered was not stored once.
    expect(mine.length, `${label} ${s} delivered unique = stored`).toBe(stored);
  }
  lines.push(
    `  publish() p99 during the fault ${outcome.p99CallFaultMs.toFixed(0)} ms (overall ${outcome.p99CallAllMs.toFixed(0)} ms); ` +
      `first send to accepted, resends included, p99 during the fault ${outcome.p99MessageFaultMs.toFixed(0)} ms`,
  );
  console.log(lines.join('\n'));
  expect(outcome.failed).toEqual([]);
}

describe('3-node cluster, R3, two brokers', () => {
  it('kill -9 of the PHI_INGEST stream leader mid-run, then its restart: every message exactly once to each subscriber', async () => {
    const leader = await cluster.streamLeader(STREAMS.ingest);
    expect(leader).toBeDefined();
    const attempts = new Map<string, number>();
    const storedBefore = await storedDeliveries();
    const outcome = await publishThrough(
      'node',
      {
        at: Math.floor(TOTAL / 3),
        inject: async () => {
          await cluster.kill(leader ?? '');
        },
        recoverAt: Math.floor((2 * TOTAL) / 3),
        recover: () => cluster.restart(leader ?? ''),
      },
      attempts,
    );
    await expectExactlyOnce('kill -9 stream leader', outcome, attempts, storedBefore);
    // The restarted node catches up: every stream has a leader and all three replicas current again.
    await cluster.waitForStreamLeaders([STREAMS.ingest, STREAMS.deliver, STREAMS.audit]);
  }, 240_000);

  it('kill -9 of one broker process mid-run: nothing lost, nothing twice', async () => {
    const victim = brokers.find((b) => b.child.exitCode === null && b.child.signalCode === null);
    expect(victim).toBeDefined();
    const attempts = new Map<string, number>();
    const storedBefore = await storedDeliveries();
    const outcome = await publishThrough(
      'broker',
      {
        at: Math.floor(TOTAL / 3),
        inject: () => killBroker(victim as { child: ChildProcess; exited: Promise<void> }),
        recoverAt: Math.floor((2 * TOTAL) / 3),
        recover: async () => {
          await startBroker();
        },
      },
      attempts,
    );
    await expectExactlyOnce('kill -9 one broker', outcome, attempts, storedBefore);
    expect(brokerLogs).not.toMatch(/Clusterfault|555-07/);
  });

  it.runIf(CHAOS)(
    'rolling restart of all three nodes (SIGTERM, one at a time): every message exactly once',
    async () => {
      const attempts = new Map<string, number>();
      const storedBefore = await storedDeliveries();
      const outcome = await publishThrough(
        'rolling',
        {
          at: Math.floor(TOTAL / 10),
          inject: async () => {
            for (const node of cluster.nodes) {
              await node.server?.stop();
              node.server = undefined;
              await cluster.restart(node.name);
              await cluster.waitForStreamLeaders([STREAMS.ingest, STREAMS.deliver, STREAMS.audit, STREAMS.receipts]);
            }
          },
          recoverAt: Math.floor((9 * TOTAL) / 10),
          recover: async () => undefined,
        },
        attempts,
      );
      await expectExactlyOnce('rolling restart', outcome, attempts, storedBefore);
    },
  );

  it.runIf(CHAOS)('kill -9 of both brokers, then both restarted: every message exactly once', async () => {
    const attempts = new Map<string, number>();
    const storedBefore = await storedDeliveries();
    const outcome = await publishThrough(
      'bothbrokers',
      {
        at: Math.floor(TOTAL / 3),
        inject: async () => {
          const live = brokers.filter((b) => b.child.exitCode === null && b.child.signalCode === null);
          await Promise.all(live.map(killBroker));
        },
        recoverAt: Math.floor(TOTAL / 2),
        recover: async () => {
          await Promise.all([startBroker(), startBroker()]);
        },
      },
      attempts,
    );
    await expectExactlyOnce('kill -9 both brokers', outcome, attempts, storedBefore);
  });
});
