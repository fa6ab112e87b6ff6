// The broker process: consumes PHI_INGEST (a JetStream work queue shared by every broker process, so they
// split the work and survive each other's crashes) and runs the pure pipeline. Per message: its AuditEvents are
// stored first (audit before disclosure: no delivery the trail does not hold), then its deliveries and the
// patient-to-service registry update (src/registry/), then its receipt, and only then is the ingest message
// acknowledged — at-least-once end to end; deliveries carry a stable Nats-Msg-Id so a redelivered ingest message
// does not duplicate them inside the duplicate window, and subscribers de-duplicate by message id beyond it.
// A broker that cannot append to its audit trail delivers nothing, is not ready, and raises an alert until it can
// (docs/broker.md, docs/health-and-metrics.md).
import {
  headers as natsHeaders,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
} from 'nats';
import { acceptedFacts, profileElements, rejectedFacts, startFacts } from './audit-facts.js';
import { AuditTrail } from '../audit/trail.js';
import { accountsDisclosures, type Catalog } from '../catalog/types.js';
import { BROKER_ID } from '../wire/ids.js';
import type { BrokerConfig } from '../config/config.js';
import { Keyring } from '../crypto/keyring.js';
import type { PublicKeyRecord, ServiceKeys } from '../crypto/keys.js';
import { signDetached } from '../crypto/sign.js';
import { cryptoBackend, nativeLoadError } from '../crypto/sodium.js';
import { ConsentView } from '../consent/view.js';
import { disclosureMessages } from '../disclosures/record.js';
import { BrokerError, isBrokerError } from '../wire/errors.js';
import { DEFAULT_VALIDATION_LIMITS } from '../fhir/limits.js';
import { envelopeHash } from '../envelope/provenance.js';
import { MESSAGE_ID_PATTERN } from '../wire/ids.js';
import { errorFields, errorStack, type Logger } from '../log/log.js';
import { alertFact } from '../audit/trail.js';
import type { Alert } from '../audit/alerts.js';
import { partyOfKid, type OperatorRootKey } from '../crypto/key-directory.js';
import { syncKeyring, type KeyDirectoryWatch } from '../nats/key-directory.js';
import { CONDITIONS, Health } from './health.js';
import { HealthServer } from './health-server.js';
import { BrokerMetrics } from './metrics.js';
import { AckedPublisher } from '../nats/acked-publish.js';
import { BatchSigner } from './batch-signer.js';
import { BROKER_CONSUMER, HEADERS, STREAMS, parseIngestSubject, subjects } from '../wire/names.js';
import {
  ensureBrokerInfrastructure,
  ensureConsentBucket,
  ensureDeliveryConsumers,
  ensureDisclosureStream,
  streamDrift,
  streamSettings,
} from '../nats/setup.js';
import { pseudonymizer } from '../projection/pseudonymizer.js';
import { RegistryRecorder } from '../registry/recorder.js';
import { RegistryUnavailable } from '../registry/store.js';
import {
  checkEnvelope,
  openMessage,
  projectMessage,
  type CheckedEnvelope,
  type IngestMessage,
  type PipelineContext,
  type Routed,
} from './pipeline.js';
import { acceptedReceipt, encodeReceipt, rejectedReceipt, type Receipt } from '../wire/receipt.js';
import {
  buildQuarantine,
  type QuarantineSealKey,
  buildQuotaRecord,
  buildThrottleRecord,
  encodeRecordHeader,
  type QuarantineRecord,
} from './quarantine.js';
import { QuarantineQuota } from './quarantine-quota.js';
import { RejectionThrottle, type RejectionThrottleSettings, type ThrottleSummary } from './rejection-throttle.js';
import { isStreamFull } from '../nats/jetstream-errors.js';
import { ReplayCache } from './replay-cache.js';
import { compileRoutes, subscriberServices } from './routes.js';
import { subscriberPseudonymKey, type BrokerSecrets } from '../crypto/broker-secrets.js';
import { serverMaxPayload } from '../wire/max-payload.js';

export interface BrokerOptions {
  readonly config: BrokerConfig;
  readonly catalog: Catalog;
  readonly nc: NatsConnection;
  /**
   * The broker's own key versions, current first: every held version, so ingest sealed to a previous one (retained
   * past its overlap) still opens until `keys prune` destroys it.
   */
  readonly keys: ServiceKeys | readonly ServiceKeys[];
  /** Every service's public keys (JWKS). */
  readonly peers: readonly PublicKeyRecord[];
  readonly secrets: BrokerSecrets;
  readonly logger: Logger;
  readonly now?: () => number;
  /** The audit trail (docs/audit.md); by default the broker opens its own chain and closes it on stop. */
  readonly audit?: AuditTrail;
  /** Readiness conditions (health.ts); by default the broker's own. Another component adds its condition to it. */
  readonly health?: Health;
  /** Also export the standard process metrics (CPU, memory, event loop) on /metrics: for one broker per process (`up`). */
  readonly processMetrics?: boolean;
  /**
   * The key directory (docs/keys.md): loaded at start and watched, so rotations and revocations apply without a
   * restart; `reloadOwnKeys` reads the broker's own key versions when a rotation of the broker names a new one.
   */
  readonly keyDirectory?: {
    readonly root: OperatorRootKey;
    readonly reloadOwnKeys?: () => readonly ServiceKeys[] | Promise<readonly ServiceKeys[]>;
    /** Reads the broker secrets again when the broker's entry changes: a newer quarantine key version seals from then on. */
    readonly reloadSecrets?: () => Promise<BrokerSecrets | undefined>;
  };
  /** The clock a retiring key's notAfter is checked against; default `now` (tests pass the end of an overlap). */
  readonly keyClock?: () => number;
}

export interface BrokerStats {
  accepted: number;
  rejected: number;
  deliveries: number;
}

const RETRY_DELAY_MS = 1_000;
/** Bytes kept free for headers in each delivery. */
const DELIVERY_HEADROOM = 4 * 1024;
/** Bytes kept free for headers in each quarantine part. */
const QUARANTINE_HEADROOM = 16 * 1024;

export class Broker {
  readonly stats: BrokerStats = { accepted: 0, rejected: 0, deliveries: 0 };
  /** Readiness (/readyz): the broker's conditions, and any another component registers. */
  readonly health: Health;
  /** Prometheus metrics (/metrics), in a registry of this broker's own. */
  readonly metrics: BrokerMetrics;
  private healthServer: HealthServer | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  /** True once an append is stored (broker-start); false from a failed one (or PHI_AUDIT found missing) until one succeeds. */
  private auditWritable = false;
  private auditDownSince = 0;
  private auditProbe: NodeJS.Timeout | undefined;
  private probing = false;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private readonly inflight = new Set<Promise<void>>();
  /** Signs deliveries and receipts in batches (signature version 2); undefined: one signature each (version 1). */
  readonly batchSigner: BatchSigner | undefined;
  private stopping = false;
  private audit!: AuditTrail;
  /** This broker's audit trail, for the components that run beside it (the access desk). */
  get auditTrail(): AuditTrail {
    return this.audit;
  }
  private ownsAudit = false;
  /** The quarantine key version new records are sealed with: the secrets' current one, replaced on a rotation. */
  private quarantineSeal!: { current: QuarantineSealKey };
  /** The key directory watch (opts.keyDirectory), stopped with the broker. */
  private directory: KeyDirectoryWatch | undefined;
  /** Per-sender quarantine quota (config quarantineSender*): in this process's memory. */
  private readonly quarantineQuota: QuarantineQuota;
  /** Per-sender rejection rate limit (config rejectionSender*): in this process's memory. */
  private readonly rejectionThrottle: RejectionThrottle;
  private readonly throttleSettings: RejectionThrottleSettings;
  private throttleTimer: NodeJS.Timeout | undefined;
  private flushingThrottled: Promise<void> | undefined;
  private elementsOf: (profileUrl: string) => readonly string[] = () => [];
  /** The broker's keyed pseudonym (the registry's, src/registry/pseudonym.ts), for a resource's `<Type>/<id>` in its audit facts. */
  private readonly resourcePseudonym = (ref: string): string => this.registry.pseudonymOf(ref);

  private constructor(
    private readonly opts: BrokerOptions,
    private readonly js: JetStreamClient,
    /** Every JetStream publish of the message path (deliveries, disclosures, receipts, quarantine). */
    private readonly pub: AckedPublisher,
    private readonly replay: ReplayCache,
    private readonly ctx: PipelineContext,
    /** Patient restrictions in force (src/consent/view.ts): `consent.waitForRevision(r)` awaits a change. */
    readonly consent: ConsentView,
    /** The patient-to-service registry (src/registry/): written before every ingest ack. */
    readonly registry: RegistryRecorder,
  ) {
    this.health = opts.health ?? new Health(opts.now);
    this.batchSigner = ctx.batchSigned === true ? new BatchSigner() : undefined;
    this.quarantineQuota = new QuarantineQuota(
      {
        maxBytes: opts.config.quarantineSenderMaxBytes,
        maxMessages: opts.config.quarantineSenderMaxMessages,
        windowMs: opts.config.quarantineSenderWindowMs,
      },
      ctx.now,
    );
    this.throttleSettings = {
      maxRejections: opts.config.rejectionSenderMaxMessages,
      windowMs: opts.config.rejectionSenderWindowMs,
    };
    this.rejectionThrottle = new RejectionThrottle(this.throttleSettings, ctx.now);
    this.metrics = new BrokerMetrics(
      { inflight: () => this.inflight.size },
      { processMetrics: opts.processMetrics === true },
    );
    this.health.setCondition(CONDITIONS.consuming, false, 'starting');
    this.health.onChange((name, state) => {
      this.metrics.ready.set(this.health.ready ? 1 : 0);
      const fields = { event: 'broker.condition', condition: name, ok: state.ok, reason: state.reason };
      if (state.ok) opts.logger.info(fields, 'readiness condition holds');
      else opts.logger.warn(fields, 'readiness condition fails');
    });
  }

  /** The port /healthz, /readyz and /metrics listen on (config healthPort), or undefined when not served. */
  get healthPort(): number | undefined {
    return this.healthServer?.port;
  }

  static async start(opts: BrokerOptions): Promise<Broker> {
    const { config, catalog, nc, logger } = opts;
    const routes = compileRoutes(catalog);
    const keyring = new Keyring(opts.keys, [...opts.peers]);
    keyring.now = opts.keyClock ?? opts.now ?? Date.now;
    // Alerts need the audit trail, opened below: directory events before then are replayed once it is.
    const early: Alert[] = [];
    let raise = (a: Alert): void => void early.push(a);
    const quarantineSeal = { current: { version: opts.secrets.quarantineVersion, key: opts.secrets.quarantineKey } };
    const reloadSecrets = opts.keyDirectory?.reloadSecrets;
    const directory =
      opts.keyDirectory === undefined
        ? undefined
        : await syncKeyring({
            nc,
            root: opts.keyDirectory.root,
            keyring,
            logger,
            ...(opts.keyDirectory.reloadOwnKeys === undefined
              ? {}
              : { reloadOwnKeys: opts.keyDirectory.reloadOwnKeys }),
            onApplied: (entry, applied, initial) => {
              // A revocation applied while running is a security event; one found at start was alerted when it happened.
              if (initial) return;
              // `keys rotate --broker` writes the secrets file before the entry (docs/keys.md "The broker secrets").
              if (entry.party === BROKER_ID && reloadSecrets !== undefined)
                void reloadSecrets().then(
                  (s) => {
                    if (s === undefined || s.quarantineVersion <= quarantineSeal.current.version) return;
                    quarantineSeal.current = { version: s.quarantineVersion, key: s.quarantineKey };
                    logger.info(
                      { event: 'keys.quarantine.rotated', version: s.quarantineVersion },
                      'quarantine key version loaded; new quarantine records are sealed with it',
                    );
                  },
                  (err: unknown) =>
                    logger.error(
                      { event: 'keys.quarantine.unreadable', ...errorFields(err) },
                      'the broker secrets could not be read again; sealing quarantine records with the previous version',
                    ),
                );
              for (const kid of applied.newlyRevoked)
                raise({
                  rule: 'key-revoked',
                  service: entry.party,
                  detail: `key ${kid} revoked at ${entry.keys.find((k) => k.jwk.kid === kid)?.revokedAt ?? entry.issuedAt}: messages it signed stored from then on are rejected`,
                });
              // The audit record of an epoch deletion (docs/keys.md "Bounded exposure").
              if (applied.newlyDestroyed.length > 0)
                raise({
                  rule: 'key-destroyed',
                  service: entry.party,
                  detail: `private keys ${applied.newlyDestroyed.join(', ')} destroyed at ${entry.issuedAt}: ciphertext sealed to them no longer opens`,
                });
            },
            onRefused: (party, error) =>
              raise({
                rule: 'key-directory-refused',
                service: party,
                detail: `${error.code}: ${error.message}`,
              }),
          });
    // Every subscriber needs a public encryption key before anything is routed to it; a missing one is a
    // deployment error found at start, not a rejection of some publisher's message later.
    const missing = subscriberServices(routes).filter((service) => {
      try {
        keyring.encryptionKeyOf(service);
        return false;
      } catch {
        return true;
      }
    });
    if (missing.length > 0) {
      directory?.stop();
      throw new BrokerError(
        'E_CONFIG_INVALID',
        `no public encryption key for subscriber(s): ${missing.join(', ')} (add them to the JWKS)`,
      );
    }
    const { seen } = await ensureBrokerInfrastructure(nc, streamSettings(config));
    // What follows is independent once the streams exist, so it is requested together (start-up time); all of
    // it is in place before the first message is taken.
    const [, , consent, registry, audit] = await Promise.all([
      // Every subscriber's durables exist before the first delivery (provisioned by the admin; created here only on
      // the plaintext development server), so a subscriber that has never connected still finds everything
      // published for it (retained for deliverMaxAgeMs).
      ensureDeliveryConsumers(nc, catalog, config.replicas),
      // Patient rights (45 CFR 164.522, 164.528): restrictions are loaded before the first message is routed.
      ensureDisclosureStream(nc, {
        maxAgeMs: config.disclosureMaxAgeMs,
        maxBytes: config.disclosureMaxBytes,
        duplicateWindowMs: config.duplicateWindowMs,
        replicas: config.replicas,
      }),
      ensureConsentBucket(nc, config.replicas).then((bucket) =>
        ConsentView.start(bucket, opts.secrets, catalog.patients, logger),
      ),
      RegistryRecorder.open(nc, catalog.patients, opts.secrets, logger, config.replicas),
      opts.audit ??
        AuditTrail.open({
          nc,
          settings: config,
          // The current own key, as for deliveries: checkpoints follow a rotation of the broker without a restart.
          signer: () => keyring.signerInOverlap(),
          publicKeys: (kid) => (partyOfKid(kid) === BROKER_ID ? keyring.heldSigningKey(kid) : undefined),
          logger,
          ...(opts.now === undefined ? {} : { now: opts.now }),
        }),
    ]);
    const pseudonymizers = new Map<string, (v: string) => string>();
    const ctx: PipelineContext = {
      keyring,
      // The current own key: a rotation of the broker (key directory) changes it while running.
      get signer() {
        return keyring.signerInOverlap();
      },
      routes,
      limits: DEFAULT_VALIDATION_LIMITS,
      maxMessageBytes: config.maxMessageBytes,
      // A delivery must fit in one NATS message with its headers.
      maxDeliveryBytes: serverMaxPayload(nc.info) - DELIVERY_HEADROOM,
      clockSkewMs: config.clockSkewMs,
      replayWindowMs: config.replayWindowMs,
      pseudonymizerFor: (service) => {
        let p = pseudonymizers.get(service);
        if (p === undefined) {
          p = pseudonymizer(subscriberPseudonymKey(opts.secrets.pseudonymKey, service));
          pseudonymizers.set(service, p);
        }
        return p;
      },
      now: opts.now ?? Date.now,
      batchSigned: config.signatureVersion === 2,
      restrictions: consent,
      accountedRecipients: new Set([...catalog.services.values()].filter(accountsDisclosures).map((s) => s.id)),
      // One patient identity for restrictions, disclosures, the registry and the audit trail: the catalog's
      // canonical rule, resolved once per message with one registry pseudonym per patient.
      patients: { rule: registry.patientRule, pseudonymOf: (ref) => registry.pseudonymOf(ref) },
    };
    const pub = new AckedPublisher(nc);
    const broker = new Broker(opts, nc.jetstream(), pub, new ReplayCache(seen, pub), ctx, consent, registry);
    broker.audit = audit;
    broker.ownsAudit = opts.audit === undefined;
    broker.quarantineSeal = quarantineSeal;
    broker.directory = directory;
    raise = (a) => audit.alert(a);
    for (const a of early) raise(a);
    broker.elementsOf = profileElements(catalog);
    try {
      await broker.recordAudit(startFacts(catalog));
      broker.health.setCondition(CONDITIONS.jetstream, true);
      await broker.checkHealth();
      if (config.healthPort !== undefined) {
        broker.healthServer = await HealthServer.start({
          host: config.healthHost,
          port: config.healthPort,
          health: broker.health,
          registry: broker.metrics.registry,
          logger,
        });
      }
      await broker.run();
    } catch (err) {
      broker.stopTimers();
      directory?.stop();
      await broker.healthServer?.stop();
      throw err;
    }
    broker.health.setCondition(CONDITIONS.consuming, true);
    broker.healthTimer = setInterval(() => void broker.checkHealth(), config.healthCheckMs);
    broker.healthTimer.unref();
    // Closed throttle windows are written within a second of closing.
    broker.throttleTimer = setInterval(
      () => void broker.flushThrottled(false),
      Math.min(1000, config.rejectionSenderWindowMs),
    );
    broker.throttleTimer.unref();
    const crypto = cryptoBackend();
    const fallback = nativeLoadError();
    if (fallback !== undefined)
      logger.warn(
        { event: 'crypto.fallback', crypto: crypto.name, reason: fallback.message },
        'sodium-native could not load; using libsodium-wrappers (WebAssembly)',
      );
    logger.info(
      {
        catalogHash: catalog.hash,
        types: routes.size,
        crypto: crypto.name,
        libsodium: crypto.libsodium,
        event: 'broker.ready',
      },
      'broker ready',
    );
    return broker;
  }

  private stopTimers(): void {
    clearInterval(this.healthTimer);
    clearInterval(this.throttleTimer);
    clearInterval(this.auditProbe);
    this.auditProbe = undefined;
  }

  /**
   * The periodic readiness check: JetStream answers, the broker's streams have the configured settings, PHI_AUDIT
   * exists (a missing one makes the audit condition fail at once, before a message finds out), and the backlog on
   * the broker's consumer (a gauge). One check at a time.
   */
  checkHealth(): Promise<void> {
    this.checking ??= this.runHealthCheck().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async runHealthCheck(): Promise<void> {
    const { nc, config } = this.opts;
    if (nc.isClosed()) {
      this.health.setCondition(CONDITIONS.jetstream, false, 'connection closed');
      return;
    }
    let jsm: JetStreamManager;
    try {
      jsm = await nc.jetstreamManager();
      await jsm.getAccountInfo();
      this.health.setCondition(CONDITIONS.jetstream, true);
    } catch (err) {
      this.health.setCondition(CONDITIONS.jetstream, false, `JetStream unavailable (${natsCode(err)})`);
      return;
    }
    const [drift, audit, consumer] = await Promise.allSettled([
      streamDrift(jsm, streamSettings(config), {
        maxAgeMs: config.disclosureMaxAgeMs,
        maxBytes: config.disclosureMaxBytes,
        duplicateWindowMs: config.duplicateWindowMs,
        replicas: config.replicas,
      }),
      jsm.streams.info(STREAMS.audit),
      jsm.consumers.info(STREAMS.ingest, BROKER_CONSUMER),
    ]);
    if (drift.status === 'fulfilled')
      this.health.setCondition(
        CONDITIONS.streams,
        drift.value.length === 0,
        drift.value.length === 0 ? undefined : `not as configured: ${drift.value.join(', ')}`,
      );
    else
      this.health.setCondition(CONDITIONS.streams, false, `could not read stream settings (${natsCode(drift.reason)})`);
    if (audit.status === 'rejected' && isStreamNotFound(audit.reason))
      this.auditUnavailable(`${STREAMS.audit} does not exist`);
    if (consumer.status === 'fulfilled') {
      this.metrics.ingestPending.set({ state: 'waiting' }, consumer.value.num_pending);
      this.metrics.ingestPending.set({ state: 'unacknowledged' }, consumer.value.num_ack_pending);
    }
  }

  /** Appends AuditEvents, timed and counted; a refused append makes the broker stop delivering until one succeeds. */
  private async recordAudit(facts: Parameters<AuditTrail['record']>[0]): Promise<void> {
    try {
      await this.metrics.timeAsync('audit_append', this.audit.record(facts));
    } catch (err) {
      this.metrics.auditAppends.inc({ outcome: 'failed' });
      if (isBrokerError(err) && err.code === 'E_AUDIT_CHAIN') this.auditUnavailable(err.message);
      throw err;
    }
    this.metrics.auditAppends.inc({ outcome: 'ok' });
    this.auditAvailable();
  }

  /**
   * The audit trail cannot be written: from now on every message waits (nak) without being routed, /readyz fails on
   * `audit`, and the `audit-unavailable` alert goes out (log, phi.alert.audit-unavailable, metric). A probe appends
   * the alert's AuditEvent every second; when it is stored, the broker takes messages again.
   */
  private auditUnavailable(reason: string): void {
    this.health.setCondition(CONDITIONS.audit, false, reason);
    if (!this.auditWritable) return;
    this.auditWritable = false;
    this.auditDownSince = this.ctx.now();
    this.metrics.auditWritable.set(0);
    this.metrics.alerts.inc({ rule: 'audit-unavailable' });
    this.opts.logger.error(
      { event: 'broker.audit.unavailable', chain: this.audit.instanceId, reason },
      'cannot append to the audit trail: delivering nothing until it can',
    );
    this.audit.announce({
      rule: 'audit-unavailable',
      detail: 'the broker cannot append to its audit trail; it delivers nothing until it can',
    });
    if (this.auditProbe === undefined && !this.stopping) {
      this.auditProbe = setInterval(() => void this.probeAudit(), RETRY_DELAY_MS);
      this.auditProbe.unref();
    }
  }

  private auditAvailable(): void {
    if (this.auditWritable) return;
    this.auditWritable = true;
    clearInterval(this.auditProbe);
    this.auditProbe = undefined;
    this.metrics.auditWritable.set(1);
    this.health.setCondition(CONDITIONS.audit, true);
    if (this.auditDownSince === 0) return; // the first append (broker-start)
    this.opts.logger.warn(
      { event: 'broker.audit.recovered', chain: this.audit.instanceId, downMs: this.ctx.now() - this.auditDownSince },
      'the audit trail is writable again: taking messages',
    );
  }

  /** While the trail is unwritable: records the outage as an alert AuditEvent; its storing ends the outage. */
  private async probeAudit(): Promise<void> {
    if (this.probing || this.auditWritable) return;
    this.probing = true;
    try {
      await this.recordAudit([
        alertFact({
          rule: 'audit-unavailable',
          detail: `the audit trail could not be written for ${this.ctx.now() - this.auditDownSince} ms; nothing was delivered meanwhile`,
        }),
      ]);
    } catch {
      // still unwritable: recordAudit kept the condition failing; the next probe tries again
    } finally {
      this.probing = false;
    }
  }

  private async run(): Promise<void> {
    const consumer = await this.js.consumers.get(STREAMS.ingest, BROKER_CONSUMER);
    const limit = this.opts.config.concurrency;
    this.messages = await consumer.consume({ max_messages: Math.max(limit * 2, 16) });
    const messages = this.messages;
    this.loop = (async () => {
      for await (const m of messages) {
        const p = this.handle(m).finally(() => this.inflight.delete(p));
        this.inflight.add(p);
        if (this.inflight.size >= limit) await Promise.race(this.inflight);
      }
    })().then(
      () => {
        if (!this.stopping)
          this.opts.logger.error(
            { event: 'broker.consumer.ended' },
            'the ingest consumer ended; this broker takes no more messages',
          );
      },
      (err: unknown) => {
        this.opts.logger.error(
          { event: 'broker.consumer.failed', ...errorFields(err) },
          'the ingest consumer failed; this broker takes no more messages',
        );
      },
    );
  }

  /** Stops taking messages, finishes those in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.health.setCondition(CONDITIONS.consuming, false, 'stopping');
    this.stopTimers();
    await this.messages?.close();
    await this.loop;
    await Promise.allSettled([...this.inflight]);
    await this.checking;
    await this.healthServer?.stop();
    await this.consent.stop();
    await this.flushingThrottled;
    await this.flushThrottled(true);
    const unwritten = this.rejectionThrottle.due(true);
    if (unwritten.length > 0)
      this.opts.logger.error(
        {
          event: 'quarantine.throttle.lost',
          summaries: unwritten.map((u) => ({ sender: u.sender, count: u.count, codes: u.codes })),
        },
        'throttle summaries could not be written before the stop; each message had its receipt',
      );
    this.directory?.stop();
    try {
      await this.audit.record([{ kind: 'broker-stop' }]);
      if (this.ownsAudit) await this.audit.close();
    } catch (err) {
      this.opts.logger.error(
        { event: 'audit.stop.failed', ...errorFields(err) },
        'could not record the stop in the audit trail',
      );
    }
  }

  /**
   * checkEnvelope; on E_KEY_UNKNOWN, the sender's key directory entry is read once more and the check repeated: a
   * publisher that rotated may sign with its new key a moment before this broker's watch applies the entry.
   */
  private async checkWithDirectory(input: IngestMessage): Promise<CheckedEnvelope> {
    try {
      return this.metrics.time('verify', () => checkEnvelope(input, this.ctx));
    } catch (err) {
      const sender = parseIngestSubject(input.subject)?.service;
      if (this.directory === undefined || sender === undefined || !isBrokerError(err) || err.code !== 'E_KEY_UNKNOWN')
        throw err;
      if (!(await this.directory.refresh(sender))) throw err;
      return this.metrics.time('verify', () => checkEnvelope(input, this.ctx));
    }
  }

  private async handle(m: JsMsg): Promise<void> {
    const log = this.opts.logger;
    const input: IngestMessage = {
      subject: m.subject,
      data: m.data,
      signature: m.headers?.get(HEADERS.signature) || undefined,
      storedAtMs: Math.floor(m.info.timestampNanos / 1e6),
    };
    const seq = m.info.streamSequence;
    // nats-server's clock against this one: a skew between hosts shows here, nowhere else.
    this.metrics.observe('queued', Math.max(0, Date.now() / 1e3 - m.info.timestampNanos / 1e9));
    if (!this.auditWritable) {
      // Nothing is decided while the audit trail cannot hold the decision: the message waits, unrouted.
      this.metrics.retries.inc({ reason: 'E_AUDIT_CHAIN' });
      this.opts.logger.debug(
        { event: 'ingest.held', seq, code: 'E_AUDIT_CHAIN' },
        'held: the audit trail is unwritable',
      );
      m.nak(RETRY_DELAY_MS);
      return;
    }
    let checked: CheckedEnvelope | undefined;
    try {
      checked = await this.checkWithDirectory(input);
      const routed = await this.routeWhileClaiming(checked, seq);
      const { deliveries, withheld, restricted } = routed;
      // routeMessage has already refused an unresolved patient (when the catalog says so) before sealing any copy.
      const registration = this.registry.plan(
        { messageId: checked.env.id, sender: checked.sender, type: checked.type },
        routed.patients,
      );
      for (const w of withheld) {
        log.warn(
          {
            event: 'delivery.withheld',
            id: checked.env.id,
            service: w.service,
            code: w.error.code,
            path: w.error.path,
          },
          'delivery withheld',
        );
      }
      for (const r of restricted) {
        // The restriction decision (45 CFR 164.522): ids and codes only; the audit trail turns it into an AuditEvent.
        // At debug, like ingest.accepted: a normal per-message decision, recorded as an AuditEvent already.
        log.debug(
          {
            event: 'delivery.restricted',
            id: checked.env.id,
            service: r.service,
            type: checked.type,
            purpose: r.purpose,
            consent: r.denial.consent,
            reason: r.denial.reason,
            code: r.denial.code,
          },
          'delivery stopped by a patient restriction',
        );
      }
      // Disclosure records (45 CFR 164.528) are persisted with the deliveries, before the ingest is acknowledged.
      const disclosures = disclosureMessages(
        { id: checked.env.id, sender: checked.sender, type: checked.type },
        deliveries,
        this.ctx.now(),
      );
      for (const d of disclosures)
        if (d.unresolved)
          log.warn(
            { event: 'disclosure.unresolved', id: checked.env.id, type: checked.type },
            'a disclosure about no resolvable patient, recorded under _unresolved',
          );
      // Audit before disclosure: the message's AuditEvents (accepted, delivered, withheld) are stored — JetStream
      // acknowledged — before any delivery is published. A failure here publishes nothing (the message is retried).
      await this.recordAudit(
        acceptedFacts(checked, seq, routed, this.elementsOf, this.ctx.signer.kid, this.resourcePseudonym),
      );
      const stored: Promise<unknown>[] = [];
      for (const d of deliveries) {
        const h = natsHeaders();
        if (d.sig === undefined) throw new BrokerError('E_INTERNAL', 'a delivery was not signed');
        h.set(HEADERS.signature, d.sig);
        stored.push(this.pub.publish(d.subject, d.bytes, { msgID: d.msgId, headers: h }));
      }
      for (const d of disclosures) stored.push(this.pub.publish(d.subject, d.bytes, { msgID: d.msgId }));
      // The registry write goes out with the deliveries (one round trip): it may over-count a holder, never miss
      // one, and a delivery's failure still decides before the registry's (docs/broker.md, step 4).
      const registered = this.registry.persist(registration, deliveries, this.ctx.now());
      await settledInOrder([
        this.metrics.timeAsync('publish_deliveries', Promise.all(stored)),
        this.metrics.timeAsync('registry', registered),
      ]);
      // The receipt says "accepted" only once the AuditEvents, the deliveries and the registry are stored.
      await this.metrics.timeAsync(
        'receipt',
        this.sendReceipt(
          checked.sender,
          acceptedReceipt(checked.env.id, checked.hash, deliveries.length, this.ctx.now()),
          seq,
        ),
      );
      m.ack();
      this.stats.accepted += 1;
      this.stats.deliveries += deliveries.length;
      this.metrics.accepted.inc();
      for (const d of deliveries) this.metrics.deliveries.inc({ subscriber: d.service });
      // Debug, not info: the record of each accepted message is its AuditEvent (hash-chained, in PHI_AUDIT); info
      // carries what an operator acts on (start, stop, configuration and restriction changes), warn every message
      // that left the normal path (rejected, withheld, unresolved, retried). The guard spares building the line.
      if (log.isLevelEnabled('debug')) {
        log.debug(
          {
            event: 'ingest.accepted',
            id: checked.env.id,
            sender: checked.sender,
            type: checked.type,
            seq,
            deliveries: deliveries.map((d) => d.service),
            disclosures: disclosures.length,
          },
          'accepted',
        );
      }
    } catch (err) {
      if (isTransient(err)) {
        log.warn({ event: 'ingest.retry', seq, ...errorFields(err) }, 'transient failure; will retry');
        this.metrics.retries.inc({ reason: retryReason(err) });
        m.nak(RETRY_DELAY_MS);
        return;
      }
      const error = isBrokerError(err)
        ? err
        : new BrokerError('E_INTERNAL', 'the broker could not process this message');
      if (!isBrokerError(err))
        log.error({ event: 'ingest.internal', seq, ...errorFields(err), stack: errorStack(err) }, 'internal error');
      try {
        await this.reject(input, seq, error, checked, m);
        m.ack();
        this.stats.rejected += 1;
        this.metrics.rejected.inc({ code: error.code });
      } catch (e) {
        log.warn({ event: 'quarantine.retry', seq, ...errorFields(e) }, 'could not quarantine; will retry');
        this.metrics.retries.inc({ reason: retryReason(e) });
        m.nak(RETRY_DELAY_MS);
      }
    }
  }

  /**
   * Routes the message (pure) while its replay claim is in flight; nothing is published before the claim succeeds,
   * and E_REPLAY decides before a routing error.
   */
  private async routeWhileClaiming(checked: CheckedEnvelope, seq: number): Promise<Routed> {
    const claim = this.metrics.timeAsync('replay_claim', this.replay.check(checked.env.id, seq));
    // The claim is only in nats.js's outbound buffer so far, which is written to the socket by a microtask queued
    // at the publish: yield once so that it goes out before the synchronous routing starts, not after it.
    await Promise.resolve();
    let routed: Routed;
    try {
      const opened = this.metrics.time('validate', () => openMessage(checked, this.ctx));
      routed = this.metrics.time('project_seal', () => projectMessage(checked, opened, this.ctx));
    } catch (err) {
      await claim;
      throw err;
    }
    // The batch is signed at the end of this turn of the event loop, while the claim's round trip is in flight.
    const [, signed] = await Promise.all([claim, this.signDeliveries(routed)]);
    return signed;
  }

  /** Called in the turn that sealed the deliveries, so `ctx.signer` is the key their envelopes name. */
  private async signDeliveries(routed: Routed): Promise<Routed> {
    const batch = this.batchSigner;
    if (batch === undefined) return routed;
    const key = this.ctx.signer;
    const deliveries = await Promise.all(
      routed.deliveries.map(async (d) => ({ ...d, sig: await batch.sign('delivery', d.bytes, key) })),
    );
    return { ...routed, deliveries };
  }

  private async reject(
    input: IngestMessage,
    seq: number,
    error: BrokerError,
    checked: CheckedEnvelope | undefined,
    m: JsMsg,
  ): Promise<void> {
    const route = parseIngestSubject(input.subject);
    const messageId = checked?.env.id ?? claimedMessageId(input.data, m.headers?.get(HEADERS.msgId) || undefined);
    if (!this.rejectionThrottle.admit(route?.service ?? '')) {
      await this.throttled(input, seq, error, route?.service, messageId);
      return;
    }
    const quarantineInput = { subject: input.subject, data: input.data, signature: input.signature, ingestSeq: seq };
    const facts = {
      ...(route === undefined ? {} : { sender: route.service, type: route.type }),
      ...(messageId === undefined ? {} : { messageId }),
      at: this.ctx.now(),
    };
    let record: QuarantineRecord;
    let parts: Uint8Array[];
    if (this.quarantineQuota.take(route?.service ?? '', input.data.byteLength)) {
      // Parts leave room for headers under the server's max_payload, so whatever NATS carried in fits out.
      const maxPart = Math.max(serverMaxPayload(this.opts.nc.info) - QUARANTINE_HEADROOM, 1024);
      ({ record, parts } = buildQuarantine(quarantineInput, error, facts, this.quarantineSeal.current, maxPart));
    } else {
      // Over the sender's quota: a small record (id, code, path, size) stands for the input, which is not kept.
      record = buildQuotaRecord(quarantineInput, error, facts);
      parts = [new Uint8Array(0)];
    }
    const recordHeader = encodeRecordHeader(record);
    // What the receipt and the audit trail say: the rejection, or that the input was not kept.
    let answer = error;
    try {
      for (const [i, part] of parts.entries()) {
        const h = natsHeaders();
        h.set(HEADERS.code, record.code);
        h.set(HEADERS.record, recordHeader);
        h.set(HEADERS.part, `${record.parts === 0 ? 0 : i + 1}/${record.parts}`);
        await this.pub.publish(subjects.quarantine(route?.service ?? ''), part, {
          msgID: `${record.id}.${i + 1}`,
          headers: h,
        });
      }
    } catch (err) {
      // PHI_QUARANTINE is full (discard new): old evidence stays; this rejection is answered and audited, not
      // retried forever in front of every later message.
      if (!isStreamFull(err)) throw err;
      const where = error.path === undefined ? '' : `${error.path}: `;
      answer = new BrokerError(
        'E_QUARANTINE_FULL',
        `${where}the quarantine is full; the input (${error.code}, ${input.data.byteLength} bytes) was not kept`,
        error.path === undefined ? undefined : { path: error.path },
      );
      this.opts.logger.error({ event: 'quarantine.full', seq, sender: route?.service }, 'quarantine stream is full');
    }
    if (record.code === 'E_QUARANTINE_QUOTA' && answer.code !== 'E_QUARANTINE_FULL')
      answer = new BrokerError(
        'E_QUARANTINE_QUOTA',
        record.message,
        record.path === undefined ? undefined : { path: record.path },
      );
    // The rejection is in the audit trail before its receipt goes out, as an acceptance is.
    await this.recordAudit(
      rejectedFacts(answer, {
        sender: route?.service,
        type: route?.type,
        messageId,
        quarantineId: answer.code === 'E_QUARANTINE_FULL' ? undefined : record.id,
        ingestSeq: seq,
      }),
    );
    // No receipt for a replay: it would carry the id and hash of the genuine message, and a sniffed copy that
    // won the race would make the genuine publish look rejected. The quarantine record keeps the evidence.
    if (route !== undefined && messageId !== undefined && error.code !== 'E_REPLAY') {
      await this.sendReceipt(
        route.service,
        rejectedReceipt(messageId, envelopeHash(input.data), answer, this.ctx.now()),
        seq,
      );
    }
    this.opts.logger.warn(
      {
        event: 'ingest.rejected',
        seq,
        id: messageId,
        sender: route?.service,
        type: route?.type,
        code: answer.code,
        path: answer.path,
        ...(answer.code === 'E_QUARANTINE_FULL' ? {} : { quarantine: record.id }),
      },
      'rejected',
    );
  }

  /**
   * A rejection over its sender's rate (docs/broker.md "Storage limits"): its own coded receipt, no quarantine copy
   * and no AuditEvent of its own; it is counted into the sender's window summary, and a new window raises the alert.
   */
  private async throttled(
    input: IngestMessage,
    seq: number,
    error: BrokerError,
    sender: string | undefined,
    messageId: string | undefined,
  ): Promise<void> {
    const { maxRejections, windowMs } = this.throttleSettings;
    const where = error.path === undefined ? '' : `${error.path}: `;
    const answer = new BrokerError(
      'E_SENDER_THROTTLED',
      `${where}sender over its rejection rate (${maxRejections} per ${windowMs} ms); rejected with ${error.code}; not kept, counted in the window's summary`,
      error.path === undefined ? undefined : { path: error.path },
    );
    // As for any rejection: no receipt for a replay (reject() explains why).
    if (sender !== undefined && messageId !== undefined && error.code !== 'E_REPLAY')
      await this.sendReceipt(sender, rejectedReceipt(messageId, envelopeHash(input.data), answer, this.ctx.now()), seq);
    // Counted once the receipt is out, so a redelivery after a failed receipt is not counted twice.
    if (this.rejectionThrottle.count(sender ?? '', error.code, seq, input.data.byteLength)) {
      const alert = {
        rule: 'sender-throttled',
        ...(sender === undefined ? {} : { service: sender }),
        detail: `over its rejection rate (${maxRejections} per ${windowMs} ms): rejections are answered E_SENDER_THROTTLED and summarised for ${windowMs} ms`,
      } as const;
      this.metrics.alerts.inc({ rule: alert.rule });
      this.audit.announce(alert);
      this.recordAudit([alertFact(alert)]).catch((err: unknown) =>
        this.opts.logger.error(
          { event: 'audit.alert.unrecorded', rule: alert.rule, ...errorFields(err) },
          'alert not recorded in the audit trail',
        ),
      );
    }
    this.opts.logger.debug(
      { event: 'ingest.throttled', seq, id: messageId, sender, code: error.code, path: error.path },
      'rejected over the sender rejection rate',
    );
  }

  /** Writes the throttle windows that have closed (all open ones with `all`, at stop); a failed one is kept. */
  private flushThrottled(all: boolean): Promise<void> {
    if (this.flushingThrottled !== undefined) return this.flushingThrottled;
    const run = (async () => {
      for (const summary of this.rejectionThrottle.due(all)) {
        try {
          await this.writeThrottleSummary(summary);
        } catch (err) {
          this.rejectionThrottle.restore(summary);
          this.opts.logger.warn(
            { event: 'quarantine.throttle.retry', sender: summary.sender, count: summary.count, ...errorFields(err) },
            'could not write a throttle summary; will retry',
          );
        }
      }
    })().finally(() => {
      this.flushingThrottled = undefined;
    });
    this.flushingThrottled = run;
    return run;
  }

  /** One quarantine record and one AuditEvent for a sender's closed window of throttled rejections. */
  private async writeThrottleSummary(summary: ThrottleSummary): Promise<void> {
    const record = buildThrottleRecord(summary, this.throttleSettings);
    const h = natsHeaders();
    h.set(HEADERS.code, record.code);
    h.set(HEADERS.record, encodeRecordHeader(record));
    h.set(HEADERS.part, '0/0');
    let kept = true;
    try {
      await this.pub.publish(subjects.quarantine(summary.sender), new Uint8Array(0), {
        msgID: `${record.id}.1`,
        headers: h,
      });
    } catch (err) {
      // A full quarantine (discard new) keeps the AuditEvent as the only summary.
      if (!isStreamFull(err)) throw err;
      kept = false;
    }
    await this.recordAudit([
      {
        kind: 'rejected',
        ...(summary.sender === '' ? {} : { sender: { service: summary.sender } }),
        code: 'E_SENDER_THROTTLED',
        ingestSeq: summary.firstSeq,
        count: summary.count,
        codes: summary.codes,
      },
    ]);
    this.opts.logger.warn(
      {
        event: 'ingest.throttled.summary',
        sender: summary.sender,
        count: summary.count,
        codes: summary.codes,
        ...(kept ? { quarantine: record.id } : {}),
      },
      'throttled rejections summarised',
    );
  }

  private async sendReceipt(service: string, receipt: Receipt, seq: number): Promise<void> {
    const bytes = encodeReceipt(receipt);
    const h = natsHeaders();
    if (this.batchSigner !== undefined) {
      h.set(HEADERS.signature, await this.batchSigner.sign('receipt', bytes, this.ctx.signer));
    } else {
      const sig = signDetached(bytes, this.ctx.signer.secretKey);
      h.set(HEADERS.signature, Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString('base64url'));
    }
    await this.pub.publish(subjects.receipt(service), bytes, { msgID: `r-${seq}`, headers: h });
  }
}

/**
 * The id a rejected, possibly unverified message claims, so its publisher can match the receipt. Taken only
 * from an object shaped like an envelope (never from a FHIR resource's `id`, which is PHI, when a careless
 * client sends a bare resource), and from the Nats-Msg-Id header only when it is a UUID (what the SDK sends).
 */
function claimedMessageId(data: Uint8Array, header: string | undefined): string | undefined {
  try {
    const json = JSON.parse(new TextDecoder().decode(data)) as Record<string, unknown> | null;
    const envelopeShaped =
      typeof json === 'object' &&
      json !== null &&
      json['v'] === 1 &&
      'iss' in json &&
      'kid' in json &&
      'keys' in json &&
      !('resourceType' in json);
    const id = envelopeShaped ? json['id'] : undefined;
    if (typeof id === 'string' && MESSAGE_ID_PATTERN.test(id)) return id;
  } catch {
    // not JSON: fall through to the header
  }
  return header !== undefined && UUID.test(header) ? header : undefined;
}

/**
 * Waits for every promise to settle, then throws the first failure in array order (not in time order), so the
 * verdict does not depend on which write the server answered first.
 */
async function settledInOrder(all: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(all);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * NATS failures that pass (timeouts, no responders, a lost connection, JetStream briefly unavailable) are
 * retried (nak); anything else — a permanent NATS refusal such as MAX_PAYLOAD_EXCEEDED included — is a verdict
 * on the message, which is then rejected and quarantined instead of retried forever.
 */
const TRANSIENT_NATS_CODES: ReadonlySet<string> = new Set([
  'TIMEOUT',
  '503',
  'CONNECTION_CLOSED',
  'CONNECTION_DRAINING',
  'DISCONNECT',
  'CONNECTION_REFUSED',
  'CONNECTION_TIMEOUT',
  'NO_RESPONDERS',
]);

/** The `reason` label of a retry: an error code, `registry`, or the NATS code (a bounded set: TRANSIENT_NATS_CODES and a few more). */
function retryReason(err: unknown): string {
  if (isBrokerError(err)) return err.code;
  if (err instanceof RegistryUnavailable) return 'registry';
  return natsCode(err);
}

/** A NATS error's code (e.g. TIMEOUT, 503), or `unknown`: for reasons and labels, never a message text. */
function natsCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'unknown';
}

/** JetStream API error 10059, "stream not found". */
function isStreamNotFound(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } } | null)?.api_error?.err_code === 10059;
}

function isTransient(err: unknown): boolean {
  // A broker that cannot audit acknowledges nothing: the message waits for another broker (docs/audit.md).
  if (isBrokerError(err)) return err.code === 'E_AUDIT_CHAIN' || err.code === 'E_KV_CONTENDED';
  if (err instanceof RegistryUnavailable) return true; // deliveries are out; the registry write is retried, never skipped
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT_NATS_CODES.has(code);
}

export { BROKER_ID };
