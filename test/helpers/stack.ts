// Test harness: a real nats-server, the shipped catalog (or another), dev keys in a temp dir, a broker
// whose pino logs are captured (so tests can search them for PHI), and SDK clients for any service.
// mTLS by default, as deployed (test/helpers/nats.ts): the server runs the config generated from the catalog,
// streams are provisioned as the admin identity, the broker connects as the broker identity and each client as
// its service's identity — so a permission the code needs and the generated config lacks fails the tests.
// `stack.connect(name)` is the test's own inspector (every subject: tap, forge, inspect); `stack.connectAs`
// connects as a deployment identity. `{ tls: false }`: the plaintext development path, SDK `insecure: true`.
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { NatsConnection } from 'nats';
import { Broker } from '../../src/broker/broker.js';
import { type BrokerSecrets } from '../../src/crypto/broker-secrets.js';
import { ensureBrokerSecrets } from '../../src/runtime/broker-secrets.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { type Catalog } from '../../src/catalog/types.js';
import { BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID } from '../../src/wire/ids.js';
import { parseConfig, type BrokerConfig, type BrokerConfigInput } from '../../src/config/config.js';
import { type PublicKeyRecord, type ServiceKeys } from '../../src/crypto/keys.js';
import { ensureDevKeys, readJwks, readServiceKeys } from '../../src/runtime/key-files.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { createLogger, type Logger } from '../../src/log/log.js';
import { provisionStreams } from '../../src/runtime/provision.js';
import { PhiClient } from '../../src/sdk/client.js';
import { ADMIN_IDENTITY, BROKER_IDENTITY, serviceIdentity, type Identity } from '../../src/tls/identity.js';
import { startTestNats, type TestNats } from './nats.js';

export const ROOT = new URL('../../', import.meta.url).pathname;

export class LogCapture extends Writable {
  readonly lines: string[] = [];
  /** Signalled on every line, so a test can await a log event instead of sleeping. */
  readonly waiter = new Waiter();
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.lines.push(
      ...chunk
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== ''),
    );
    this.waiter.signal();
    cb();
  }
  /** Resolves when a logged record matches. */
  until(predicate: (record: Record<string, unknown>) => boolean, what: string): Promise<void> {
    return this.waiter.until(() => this.records().some(predicate), 20_000, what);
  }
  text(): string {
    return this.lines.join('\n');
  }
  records(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

export interface TestStack {
  readonly nats: TestNats;
  readonly config: BrokerConfig;
  readonly catalog: Catalog;
  readonly keysDir: string;
  readonly peers: PublicKeyRecord[];
  readonly secrets: BrokerSecrets;
  readonly logs: LogCapture;
  readonly logger: Logger;
  broker: Broker | undefined;
  keys(service: string): ServiceKeys;
  startBroker(): Promise<Broker>;
  /** Another broker process's worth of broker (its own connection, logs tagged `instance: n`), sharing the work. */
  startAnotherBroker(n: number): Promise<Broker>;
  /** An SDK client as that service (over mTLS as its identity; plaintext with `insecure` under `{ tls: false }`). */
  client(service: string, options?: { publishDeadlineMs?: number }): Promise<PhiClient>;
  /** The test inspector: every subject (tap the wire, forge input, inspect any stream); plaintext under `{ tls: false }`. */
  connect(name?: string): Promise<NatsConnection>;
  /** A deployment identity (broker, admin, a service) held to its generated permissions (mTLS stacks only). */
  connectAs(identity: Identity, name?: string): Promise<NatsConnection>;
  /** What the CLI needs to reach this stack's NATS: NATS_URL, and PHI_BROKER_NATS_TLS_DIR over mTLS. */
  readonly env: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

export interface TestStackOptions {
  config?: Partial<BrokerConfigInput>;
  /** false: no broker started (the test starts one with startBroker). */
  broker?: boolean;
  /** false: plaintext NATS, the development path (default mTLS with the generated permissions). */
  tls?: boolean;
  /** The server's max_payload (bytes). */
  maxPayload?: number;
}

export async function startTestStack(options: TestStackOptions = {}): Promise<TestStack> {
  await initCrypto();
  const catalogDirs = {
    subjects: options.config?.subjectsDir ?? join(ROOT, 'subjects'),
    profiles: options.config?.profilesDir ?? join(ROOT, 'fhir-profiles'),
  };
  const tls = options.tls !== false;
  const catalog = loadCatalog(catalogDirs); // once (~0.7 s): the server's permissions and the broker share it
  const nats = await startTestNats({
    tls,
    catalog,
    ...(options.maxPayload === undefined ? {} : { maxPayload: options.maxPayload }),
  });
  const config = parseConfig({
    dataDir: join(nats.dir, 'data'),
    natsUrl: nats.server.url,
    subjectsDir: catalogDirs.subjects,
    profilesDir: catalogDirs.profiles,
    ...(nats.tls === undefined ? {} : { natsTlsDir: nats.tls.dir }),
    ...options.config,
  });
  if (tls) {
    // As deployed: only the admin identity creates streams, buckets and the broker's consumer (phi-broker nats-provision).
    const admin = await nats.connectAs(ADMIN_IDENTITY, 'provision');
    await provisionStreams(admin, config, catalog);
    await admin.close();
  }
  const brokerConnection = (name: string): Promise<NatsConnection> =>
    tls ? nats.connectAs(BROKER_IDENTITY, name) : nats.connect(name);
  const keysDir = join(config.dataDir, 'keys');
  mkdirSync(keysDir, { recursive: true });
  ensureDevKeys(keysDir, [BROKER_ID, GATEWAY_AUDIT_ID, OPERATOR_AUDIT_ID, ...catalog.services.keys()]);
  const peers = readJwks(keysDir);
  const secrets = ensureBrokerSecrets(keysDir);
  const logs = new LogCapture();
  const logger = createLogger({ level: 'debug', destination: logs });
  const clients: PhiClient[] = [];
  const stack: TestStack = {
    nats,
    config,
    catalog,
    keysDir,
    peers,
    secrets,
    logs,
    logger,
    broker: undefined,
    keys: (service) => readServiceKeys(keysDir, service),
    async startBroker() {
      const nc = await brokerConnection('broker');
      stack.broker = await Broker.start({
        config,
        catalog,
        nc,
        keys: readServiceKeys(keysDir, BROKER_ID),
        peers,
        secrets,
        logger,
      });
      return stack.broker;
    },
    async startAnotherBroker(n) {
      const nc = await brokerConnection(`broker-${n}`);
      return Broker.start({
        config,
        catalog,
        nc,
        keys: readServiceKeys(keysDir, BROKER_ID),
        peers,
        secrets,
        logger: logger.child({ instance: n }),
      });
    },
    async client(service, opts = {}) {
      // Over mTLS as the service's own identity; on a plaintext stack the development opt-in, explicitly.
      const nc = tls ? await nats.connectAs(serviceIdentity(service), service) : await nats.connect(service);
      const c = await PhiClient.connect({
        nc,
        service,
        keys: readServiceKeys(keysDir, service),
        peers,
        logger,
        ...(tls ? {} : { insecure: true }),
        ...opts,
      });
      clients.push(c);
      return c;
    },
    connect: (name) => nats.connect(name),
    connectAs: (identity, name) => nats.connectAs(identity, name),
    env: nats.env,
    async stop() {
      for (const c of clients) await c.close().catch(() => undefined);
      await stack.broker?.stop();
      await nats.stop();
    },
  };
  if (options.broker !== false) await stack.startBroker();
  return stack;
}

/** Resolves once `predicate()` holds, checking after every event the caller signals (no sleeps). */
export class Waiter {
  private waiters: { predicate: () => boolean; resolve: () => void }[] = [];
  signal(): void {
    this.waiters = this.waiters.filter((w) => {
      if (w.predicate()) {
        w.resolve();
        return false;
      }
      return true;
    });
  }
  until(predicate: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      this.waiters.push({
        predicate,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

export function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
}

/** Every file below `dir` (recursively): the JetStream store a test searches for planted PHI. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * Publishes `resource` as `client`, expects it accepted, and returns the services the broker delivered it to
 * (sorted), read from the broker's `ingest.accepted` log record.
 */
export async function publishedTo(
  stack: Pick<TestStack, 'logs'>,
  client: PhiClient,
  resource: Record<string, unknown>,
): Promise<string[]> {
  const r = await client.publish(resource);
  if (r.status !== 'accepted') throw new Error(`expected ${r.id} accepted, got ${r.status}`);
  await stack.logs.until((l) => l['event'] === 'ingest.accepted' && l['id'] === r.id, `acceptance of ${r.id}`);
  const rec = stack.logs.records().find((l) => l['event'] === 'ingest.accepted' && l['id'] === r.id);
  return [...((rec?.['deliveries'] as string[] | undefined) ?? [])].sort();
}
