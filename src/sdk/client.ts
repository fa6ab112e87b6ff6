// What a service imports. `publish` signs and encrypts a FHIR resource field by field to the broker, carries it
// into JetStream through outages (src/sdk/durable-publish.ts) and resolves with exactly what is known of it
// (docs/publishing.md): the broker's signed verdict, stored, or not stored; `subscribe` hands a handler each delivery — verified against
// the broker's signature, decrypted, already cut to the service's minimum-necessary profile — with its
// provenance, acknowledging only after the handler succeeds (at-least-once; duplicates suppressed by id).
import { randomUUID } from 'node:crypto';
import {
  connect as natsConnect,
  headers as natsHeaders,
  type ConsumerMessages,
  type JsMsg,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from 'nats';
import { BROKER_ID } from '../wire/ids.js';
import { Keyring } from '../crypto/keyring.js';
import type { PublicKeyRecord, ServiceKeys } from '../crypto/keys.js';
import { initCrypto } from '../crypto/sodium.js';
import { VerifiedRoots } from '../envelope/batch-sig.js';
import { envelopeHash } from '../envelope/provenance.js';
import { sealEnvelope } from '../envelope/seal.js';
import { BrokerError, isBrokerError, type BrokerErrorCode } from '../wire/errors.js';
import { splitBundle } from '../fhir/bundle.js';
import { createLogger, errorFields, type Logger } from '../log/log.js';
import type { OperatorRootKey } from '../crypto/key-directory.js';
import { syncKeyring, type KeyDirectoryWatch } from '../nats/key-directory.js';
import { AckedPublisher } from '../nats/acked-publish.js';
import {
  PENDING_PUBLISHES_DEFAULT,
  PENDING_PUBLISHES_MAX,
  PUBLISH_DEADLINE_DEFAULT_MS,
  PUBLISH_DEADLINE_MAX_MS,
} from '../wire/publish.js';
import { serviceConnectionOptions, type NatsTlsFiles } from '../nats/connect-options.js';
import { HEADERS, inboxPrefix, subjects } from '../wire/names.js';
import { bindDeliveryConsumer } from '../nats/setup.js';
import { decodeReceipt, type Receipt } from '../wire/receipt.js';
import { verifyReceiptSignature } from './receipt-signature.js';
import { serveAccessRequests, type AccessRequestHandler } from './access.js';
import { AckBatch } from './ack-batch.js';
import { ConnectionWatch } from './connection-watch.js';
import { DurablePublisher } from './durable-publish.js';
import { sendAccessCommand, type AccessRequestSummary } from './access-requests.js';
import { RecentIds } from './dedupe.js';
import {
  openDelivery,
  redeliveryDelay,
  verifyDelivery,
  type Delivered,
  type ResourceOf,
  type ResourceType,
} from './delivery.js';
import { classifyInput } from './input.js';
import type { FhirResource } from 'fhir/r4.js';
import { serverMaxPayload } from '../wire/max-payload.js';

export interface PhiClientOptions {
  /**
   * An open NATS connection (the caller owns it; `close()` does not close it unless `ownsConnection`). It must be
   * TLS (the server required it) unless `insecure`. Against the generated mTLS config, open it with
   * `serviceConnectionOptions(servers, tls, service)`. Or give `servers` and `tls` instead.
   */
  readonly nc?: NatsConnection;
  readonly ownsConnection?: boolean;
  /** Where to connect when no `nc` is given; the client then owns the connection. */
  readonly servers?: string | readonly string[];
  /** This service's client certificate and key and the CA (PEM files), for mutual TLS (docs/security-model.md). */
  readonly tls?: NatsTlsFiles;
  /**
   * Development only: allow a connection without TLS. The client logs a warning (`sdk.transport.insecure`) on every
   * connect, or emits a process warning when no logger is given. Without it, a plaintext connection is refused.
   */
  readonly insecure?: boolean;
  /** This service's id in the catalog. */
  readonly service: string;
  /**
   * This service's key versions, current first (e.g. `openServiceKeyVersions`): a previous version opens the
   * deliveries sealed to it that wait in PHI_DELIVER, past its overlap too, until `keys prune` destroys it.
   */
  readonly keys: ServiceKeys | readonly ServiceKeys[];
  /** The clock key overlaps are judged by (default Date.now; tests pass time without waiting). */
  readonly keyClock?: () => number;
  /** Public keys of the broker (and optionally of other services), e.g. from the JWKS. */
  readonly peers: readonly PublicKeyRecord[];
  /**
   * How long a `publish` may take, in ms, unless the call gives its own `deadlineMs`: storing the message in JetStream
   * (resending it through disconnects) and waiting for the broker's receipt. Default 30 000; at most 120 000, which
   * the streams' de-duplication window covers (docs/publishing.md).
   */
  readonly publishDeadlineMs?: number;
  /**
   * How many publishes may wait for JetStream's acknowledgement at once (default 10 000, at most 1 000 000). One more
   * resolves at once as `not_stored` with E_QUEUE_FULL, unsent: backpressure the caller sees.
   */
  readonly maxPendingPublishes?: number;
  /**
   * How long `requestAccess` / `accessStatus` wait for the broker (default 60 s: creating a request asks every
   * holding service once before the broker replies).
   */
  readonly accessTimeoutMs?: number;
  readonly logger?: Logger;
  /**
   * The key directory (docs/keys.md): loaded at connect and watched, so peers' rotations and revocations apply
   * without a restart; `reloadOwnKeys` reads this service's key versions when a rotation names a new one.
   */
  readonly keyDirectory?: {
    readonly root: OperatorRootKey;
    readonly reloadOwnKeys?: () => readonly ServiceKeys[] | Promise<readonly ServiceKeys[]>;
  };
}

/** What is known of a publish when it resolves (docs/publishing.md). */
export type PublishResult =
  /** The broker's signed receipt: accepted, delivered to `deliveries` subscribers. */
  | { readonly status: 'accepted'; readonly id: string; readonly deliveries: number }
  /** The broker's signed receipt (or a local check before sending): rejected, with a code and element path. */
  | {
      readonly status: 'rejected';
      readonly id: string;
      readonly code: BrokerErrorCode;
      readonly message: string;
      readonly path?: string;
    }
  /** JetStream acknowledged storage in PHI_INGEST; no receipt came by the deadline. The broker will process it. */
  | { readonly status: 'stored'; readonly id: string; readonly message: string }
  /**
   * JetStream acknowledged no attempt by the deadline (E_NOT_STORED), or the client held too many publishes and sent
   * nothing (E_QUEUE_FULL). Safe to publish again. `inDoubt`: an attempt reached NATS unanswered, so it may have been
   * stored just before a failure (then subscribers may receive the content twice, under two ids).
   */
  | {
      readonly status: 'not_stored';
      readonly id: string;
      readonly code: 'E_NOT_STORED' | 'E_QUEUE_FULL';
      readonly message: string;
      readonly inDoubt: boolean;
    };

export interface PublishOptions {
  /** This call's deadline in ms (default the client's `publishDeadlineMs`; at most 120 000). */
  readonly deadlineMs?: number;
}

export type { Delivered, Provenance, ResourceOf, ResourceType } from './delivery.js';
export { redeliveryDelay } from './delivery.js';

export type { AccessRequestSummary } from './access-requests.js';

export type DeliveryHandler<R = FhirResource> = (delivery: Delivered<R>) => void | Promise<void>;

export interface Subscription {
  /** Stops receiving; unacknowledged deliveries stay in PHI_DELIVER for the next subscription. */
  stop(): Promise<void>;
  /** Resolves when the subscription ends. */
  readonly closed: Promise<void>;
}

/** A whole number of ms in [1, max], or a TypeError naming the option (a caller mistake). */
function boundedInteger(name: string, value: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max)
    throw new TypeError(`${name} must be a whole number from 1 to ${max}`);
  return value;
}

function insecureTransport(service: string): BrokerError {
  return new BrokerError(
    'E_CONFIG_INVALID',
    `service ${service}: refusing to connect to NATS without TLS; give tls (CA, certificate and key files), or insecure: true for local development only`,
  );
}

let processWarned = false;

/** Loud on purpose: a warning log on every insecure connect, or one process warning when there is no logger. */
function warnInsecure(service: string, logger: Logger | undefined): void {
  const message = `INSECURE: service ${service} is connected to NATS without TLS (insecure: true); PHI ciphertext and credentials travel in the clear — development only`;
  if (logger !== undefined) {
    logger.warn({ event: 'sdk.transport.insecure', service }, message);
  } else if (!processWarned) {
    processWarned = true;
    process.emitWarning(message, { code: 'PHI_BROKER_INSECURE_TRANSPORT' });
  }
}

export class PhiClient {
  private readonly keyring: Keyring;
  /** Publishes awaiting their receipt, by message id; a receipt must also match the hash of the bytes sent. */
  private readonly pending = new Map<
    string,
    { readonly hash: string; readonly settle: (r: Receipt | undefined) => void }
  >();
  private readonly watch: ConnectionWatch;
  /** Resends each message until JetStream acknowledges it or its deadline passes; bounds the publishes held. */
  private readonly durable: DurablePublisher;
  private readonly deadlineMs: number;
  private readonly receiptSub: NatsSubscription;
  private readonly subscriptions = new Set<Subscription>();
  /** The broker's signing kids receipts may carry: from `peers`, then the key directory's broker entry. */
  private readonly brokerSigningKeys: Set<string>;
  /** Batch roots whose broker signature verified (signature v2): one verification per batch. */
  private readonly verifiedRoots = new VerifiedRoots();
  private directory: KeyDirectoryWatch | undefined;
  /**
   * JetStream publishes with their PubAck awaited through one reply subscription (src/nats/acked-publish.ts, as
   * the broker does): nats.js `js.publish` builds a request, a timer and, on every success, a NatsError with its
   * stack trace per publish.
   */
  private readonly acked: AckedPublisher;
  /** The key version current when the client connected (the access protocol's). */
  private readonly currentKeys: ServiceKeys;
  private closing = false;
  private accessSub: NatsSubscription | undefined;

  private constructor(private readonly opts: PhiClientOptions & { readonly nc: NatsConnection }) {
    this.keyring = new Keyring(opts.keys, [...opts.peers]);
    if (opts.keyClock !== undefined) this.keyring.now = opts.keyClock;
    this.currentKeys = (Array.isArray(opts.keys) ? opts.keys[0] : opts.keys) as ServiceKeys;
    this.deadlineMs = boundedInteger(
      'publishDeadlineMs',
      opts.publishDeadlineMs ?? PUBLISH_DEADLINE_DEFAULT_MS,
      PUBLISH_DEADLINE_MAX_MS,
    );
    const limit = boundedInteger(
      'maxPendingPublishes',
      opts.maxPendingPublishes ?? PENDING_PUBLISHES_DEFAULT,
      PENDING_PUBLISHES_MAX,
    );
    this.brokerSigningKeys = new Set(
      opts.peers.filter((p) => p.service === BROKER_ID && p.use === 'sig').map((p) => p.kid),
    );
    if (this.brokerSigningKeys.size === 0) throw new TypeError('peers must include the broker public signing key');
    // Nothing is attached to the connection until every option has been checked.
    this.acked = new AckedPublisher(opts.nc);
    this.watch = new ConnectionWatch(opts.nc);
    this.durable = new DurablePublisher(this.acked, this.watch, limit, opts.logger);
    this.receiptSub = opts.nc.subscribe(subjects.receipt(opts.service), {
      callback: (err, msg) => {
        if (err !== null) return;
        this.onReceipt(msg.data, msg.headers?.get(HEADERS.signature) || undefined);
      },
    });
  }

  /**
   * Connects (or takes `nc`), refusing a connection without TLS unless `insecure: true` (45 CFR 164.312(e)(1):
   * PHI, even sealed, travels only over an authenticated, encrypted channel).
   */
  static async connect(opts: PhiClientOptions): Promise<PhiClient> {
    await initCrypto();
    if (opts.nc !== undefined && (opts.servers !== undefined || opts.tls !== undefined)) {
      throw new TypeError('PhiClient.connect: give either nc, or servers (with tls), not both');
    }
    let nc = opts.nc;
    if (nc === undefined) {
      if (opts.servers === undefined) throw new TypeError('PhiClient.connect: give nc, or servers (with tls)');
      if (opts.tls === undefined && opts.insecure !== true) throw insecureTransport(opts.service);
      // noAsyncTraces, as on the broker's and the CLI's connections (src/runtime/data-dir.ts): nats.js captures no
      // stack per request (every pull and consumer request is one); errors keep their codes, which is what the SDK reads.
      nc =
        opts.tls === undefined
          ? await natsConnect({
              servers: typeof opts.servers === 'string' ? opts.servers : [...opts.servers],
              name: opts.service,
              inboxPrefix: inboxPrefix(opts.service),
              noAsyncTraces: true,
              // As serviceConnectionOptions: reconnect for ever, every 250 ms (publishes wait for it; docs/publishing.md).
              maxReconnectAttempts: -1,
              reconnectTimeWait: 250,
            })
          : await natsConnect({
              ...serviceConnectionOptions(opts.servers, opts.tls, opts.service),
              noAsyncTraces: true,
            });
    }
    const owns = opts.nc === undefined ? true : opts.ownsConnection === true;
    // nats.js upgrades to TLS whenever the server requires it and refuses to go on unencrypted
    // (node_transport.js), so `tls_required` in the server's INFO means this connection is encrypted.
    if (nc.info?.tls_required !== true) {
      if (opts.insecure !== true) {
        if (owns) await nc.close();
        throw insecureTransport(opts.service);
      }
      warnInsecure(opts.service, opts.logger);
    }
    let client: PhiClient;
    try {
      client = new PhiClient({ ...opts, nc, ownsConnection: owns });
    } catch (err) {
      if (opts.nc === undefined) await nc.close(); // opened here: not left behind
      throw err;
    }
    await nc.flush(); // the receipt subscription is registered before anything is published
    if (opts.keyDirectory !== undefined) {
      try {
        await client.watchKeyDirectory(opts.keyDirectory);
      } catch (err) {
        await client.close();
        throw err;
      }
    }
    return client;
  }

  get service(): string {
    return this.opts.service;
  }

  private async watchKeyDirectory(dir: NonNullable<PhiClientOptions['keyDirectory']>): Promise<void> {
    const logger = this.opts.logger ?? createLogger({ level: 'silent' });
    this.directory = await syncKeyring({
      nc: this.opts.nc,
      root: dir.root,
      keyring: this.keyring,
      logger,
      ...(dir.reloadOwnKeys === undefined ? {} : { reloadOwnKeys: dir.reloadOwnKeys }),
      onApplied: (entry) => {
        if (entry.party !== BROKER_ID) return;
        for (const k of entry.keys)
          if (k.jwk.use === 'sig' && (k.status === 'active' || k.status === 'retiring'))
            this.brokerSigningKeys.add(k.jwk.kid);
      },
    });
  }

  private onReceipt(data: Uint8Array, sig: string | undefined): void {
    try {
      // Every instance of a service gets all of the service's receipts: only one this client waits for (same id,
      // same hash) is worth a signature check; a forgery of one it waits for still fails the check below.
      const receipt = decodeReceipt(data);
      const waiting = this.pending.get(receipt.id);
      if (waiting === undefined || waiting.hash !== receipt.hash) return;
      verifyReceiptSignature(data, sig, this.keyring, this.brokerSigningKeys, this.verifiedRoots);
      waiting.settle(receipt);
    } catch (err) {
      this.opts.logger?.warn({ event: 'sdk.receipt.invalid', ...errorFields(err) }, 'ignored an invalid receipt');
    }
  }

  /**
   * Publishes one resource (an object, or JSON text/bytes). Input that is not a FHIR resource is still sent —
   * sealed whole — so the broker rejects it with a code and keeps it in quarantine: nothing vanishes. Resolves by the
   * deadline with exactly what is known (docs/publishing.md); a deadline outside [1, 120 000] ms is a TypeError.
   */
  async publish(resource: FhirResource, options?: PublishOptions): Promise<PublishResult>;
  async publish(input: unknown, options?: PublishOptions): Promise<PublishResult>;
  async publish(input: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.closing) throw new TypeError('PhiClient.publish called after close()');
    const deadlineMs =
      options.deadlineMs === undefined
        ? this.deadlineMs
        : boundedInteger('deadlineMs', options.deadlineMs, PUBLISH_DEADLINE_MAX_MS);
    const deadline = Date.now() + deadlineMs;
    const id = randomUUID();
    const classified = classifyInput(input);
    const brokerEnc = this.keyring.encryptionKeyOf(BROKER_ID);
    const sealed = sealEnvelope({
      id,
      iss: this.opts.service,
      iat: Date.now(),
      typ: classified.type,
      resource: 'raw' in classified ? { raw: classified.raw } : classified.resource,
      signer: this.keyring.signerInOverlap(),
      recipients: [{ id: BROKER_ID, kek: this.keyring.kekFor(brokerEnc.kid) }],
    });
    const maxPayload = serverMaxPayload(this.opts.nc.info);
    if (sealed.bytes.byteLength > maxPayload - 1024) {
      // NATS cannot carry it, so it cannot reach the quarantine either: the caller still holds it.
      return {
        status: 'rejected',
        id,
        code: 'E_TOO_LARGE',
        message: `sealed message is ${sealed.bytes.byteLength} bytes; the limit is ${maxPayload - 1024} (NATS max_payload ${maxPayload} less room for headers)`,
      };
    }
    const hash = envelopeHash(sealed.bytes);
    // Waiting for the receipt starts before the first attempt: a receipt may arrive before the PubAck (or instead
    // of it, when the PubAck is lost), and then it proves storage, so attempts stop.
    let prove!: () => void;
    const proven = new Promise<void>((resolve) => (prove = resolve));
    const receipt = new Promise<Receipt | undefined>((resolve) => {
      this.pending.set(id, {
        hash,
        settle: (r) => {
          this.pending.delete(id);
          if (r !== undefined) prove();
          resolve(r);
        },
      });
    });
    const h = natsHeaders();
    h.set(HEADERS.signature, sealed.sig);
    const outcome = await this.durable.store({
      id,
      subject: subjects.ingest(this.opts.service, classified.type),
      data: sealed.bytes,
      headers: h,
      deadline,
      proven,
    });
    if (!outcome.stored) {
      this.pending.get(id)?.settle(undefined);
      this.opts.logger?.warn(
        {
          event: 'sdk.publish.not_stored',
          id,
          reason: outcome.reason,
          inDoubt: outcome.inDoubt,
          attempts: outcome.attempts,
        },
        'JetStream did not store the message',
      );
      return {
        status: 'not_stored',
        id,
        code: outcome.reason === 'queue_full' ? 'E_QUEUE_FULL' : 'E_NOT_STORED',
        message: outcome.detail,
        inDoubt: outcome.inDoubt,
      };
    }
    const timer = setTimeout(() => this.pending.get(id)?.settle(undefined), Math.max(0, deadline - Date.now()));
    const r = await receipt;
    clearTimeout(timer);
    if (r === undefined) {
      const message = this.closing
        ? "JetStream stored the message; the client closed before the broker's receipt arrived"
        : 'JetStream stored the message; no receipt from the broker by the deadline';
      return { status: 'stored', id, message };
    }
    if (r.status === 'accepted') return { status: 'accepted', id, deliveries: r.deliveries };
    if (r.code === 'E_REPLAY' && outcome.attempts > 1) {
      // These exact bytes (id and hash) were claimed before: a resend stored again after JetStream forgot the id (a
      // restart drops the de-duplication state of messages the broker already took off PHI_INGEST). The broker
      // processed the first copy; its verdict is in PHI_RECEIPTS.
      return {
        status: 'stored',
        id,
        message:
          'JetStream stored the message; the broker processed an earlier copy whose receipt did not reach this client',
      };
    }
    return r.path === undefined
      ? { status: 'rejected', id, code: r.code, message: r.message }
      : { status: 'rejected', id, code: r.code, message: r.message, path: r.path };
  }

  /**
   * Publishes a Bundle as its entries, each a message of its own type, with `urn:uuid:` references between
   * entries resolved (src/fhir/bundle.ts). An entry that cannot stand alone is sent raw, so the broker
   * rejects and quarantines it. Results are in entry order; each entry is a publish with the same deadline.
   */
  async publishBundle(bundle: unknown, options: PublishOptions = {}): Promise<PublishResult[]> {
    const entries = splitBundle(bundle);
    return Promise.all(
      entries.map(async (e): Promise<PublishResult> => {
        if (e.ok) return this.publish(e.resource, options);
        // Sent raw so the broker quarantines it; the caller gets the precise local reason once it has.
        const r = await this.publish({ ...(e.entry as object) }, options);
        if (r.status !== 'rejected') return r;
        return e.error.path === undefined
          ? { status: 'rejected', id: r.id, code: e.error.code, message: e.error.message }
          : { status: 'rejected', id: r.id, code: e.error.code, message: e.error.message, path: e.error.path };
      }),
    );
  }

  /**
   * Receives this service's deliveries of one resource type (or all with '*') from its durable consumer.
   * The handler's promise settling successfully acknowledges the delivery; a throw redelivers it later.
   * Binds to the consumer provisioned from the catalog (`phi-broker nats-provision`); never creates one:
   * E_SETUP_MISSING when it does not exist.
   */
  async subscribe<T extends ResourceType | '*'>(
    type: T,
    handler: DeliveryHandler<ResourceOf<T>>,
  ): Promise<Subscription> {
    const nc = this.opts.nc;
    const consumer = await bindDeliveryConsumer(nc, this.opts.service, type === '*' ? undefined : type);
    // A small buffer: deliveries are handled one at a time, and each must be acked within ack_wait.
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 64 });
    const seen = new RecentIds();
    const acks = new AckBatch((err) =>
      this.opts.logger?.warn(
        { event: 'sdk.ack.failed', ...errorFields(err) },
        'could not acknowledge a delivery; it will be redelivered',
      ),
    );
    const loop = (async () => {
      for await (const m of messages) await this.handleDelivery(m, seen, acks, handler);
    })();
    // Ends with the subscription, or with the connection (which ends the iterator's source).
    const closed = Promise.race([loop, nc.closed().then(() => undefined)]);
    const sub: Subscription = {
      stop: async () => {
        await messages.close();
        await closed;
        acks.flush();
        // Round-trip to the server so every ack sent before stop() has reached it (a ping is answered
        // after the connection's earlier messages are processed): "stopped" means "acknowledged".
        if (!nc.isClosed()) await nc.flush();
        this.subscriptions.delete(sub);
      },
      closed,
    };
    this.subscriptions.add(sub);
    return sub;
  }

  private async handleDelivery<R>(
    m: JsMsg,
    seen: RecentIds,
    acks: AckBatch,
    handler: DeliveryHandler<R>,
  ): Promise<void> {
    let delivered: Delivered<R>;
    try {
      const env = verifyDelivery(
        m.data,
        m.headers?.get(HEADERS.signature) || undefined,
        this.keyring,
        this.brokerSigningKeys,
        this.verifiedRoots,
      );
      if (seen.has(env.id)) {
        acks.ack(m);
        return;
      }
      delivered = openDelivery<R>(env, this.opts.service, this.keyring);
    } catch (err) {
      // Never hand unverified data to the handler. A key this client does not hold (yet: e.g. restarted
      // before a rotated key was installed) is retried later; anything else is terminated — the message
      // stays in PHI_DELIVER for inspection.
      const keyProblem = isBrokerError(err) && err.code === 'E_KEY_UNKNOWN';
      this.opts.logger?.error(
        { event: 'sdk.delivery.invalid', seq: m.info.streamSequence, ...errorFields(err) },
        keyProblem ? 'cannot open a delivery yet' : 'rejected a delivery',
      );
      if (keyProblem) m.nak(redeliveryDelay(m.info.redeliveryCount));
      else m.term();
      return;
    }
    try {
      await handler(delivered);
      seen.add(delivered.provenance.deliveryId);
      acks.ack(m);
    } catch (err) {
      this.opts.logger?.warn(
        {
          event: 'sdk.handler.failed',
          id: delivered.provenance.deliveryId,
          ...(isBrokerError(err) ? errorFields(err) : {}),
        },
        'handler failed; redelivering',
      );
      m.nak(redeliveryDelay(m.info.redeliveryCount));
    }
  }

  /**
   * Answers the broker's right-of-access questions (45 CFR 164.524) for this service: `handler` gets the
   * patient reference (the catalog's canonical form) and returns every resource this service holds about that
   * patient; the answer goes back sealed to the broker and signed. One handler per client.
   */
  async onAccessRequest(handler: AccessRequestHandler): Promise<{ stop(): Promise<void> }> {
    if (this.accessSub !== undefined) throw new TypeError('onAccessRequest: a handler is already registered');
    const sub = serveAccessRequests(
      this.opts.nc,
      this.opts.service,
      this.currentKeys,
      this.keyring,
      handler,
      this.opts.logger,
    );
    this.accessSub = sub;
    await this.opts.nc.flush(); // registered with the server before the caller goes on
    return {
      /** Stops answering; resolves once the server has dropped the subscription. */
      stop: async () => {
        sub.unsubscribe();
        if (this.accessSub === sub) this.accessSub = undefined;
        await this.opts.nc.flush();
      },
    };
  }

  /**
   * Files a patient's right-of-access request (45 CFR 164.524) with the broker, for a service the catalog lists as an
   * access requester (subjects/access.yaml, e.g. a patient portal). `patientRef` is the patient in a form the
   * catalog's matching rule accepts (`Patient/<id>`, or an identifier value); it travels only sealed to the broker.
   * Resolves with the request's id, status, received time and due date (30 days later); the broker then asks every
   * service holding the patient's data and assembles one Bundle. Throws a BrokerError: E_ACCESS_NOT_ALLOWED (not a
   * requester), E_PATIENT_UNRESOLVED (not in the catalog's form), E_SIGNATURE, E_TIMEOUT …
   */
  async requestAccess(patientRef: string): Promise<AccessRequestSummary> {
    if (typeof patientRef !== 'string' || patientRef.trim() === '')
      throw new TypeError('requestAccess: patientRef must be a non-empty string');
    return sendAccessCommand(this.accessRequester(), { op: 'create', patient: patientRef });
  }

  /** The current status and due date of a request this service filed (E_ACCESS_NOT_ALLOWED for anyone else's). */
  async accessStatus(id: string): Promise<AccessRequestSummary> {
    if (typeof id !== 'string' || id === '') throw new TypeError('accessStatus: id must be a request id (ar-<uuid>)');
    return sendAccessCommand(this.accessRequester(), { op: 'status', id });
  }

  private accessRequester(): Parameters<typeof sendAccessCommand>[0] {
    if (this.closing) throw new TypeError('PhiClient access request after close()');
    return {
      nc: this.opts.nc,
      service: this.opts.service,
      keys: this.currentKeys,
      keyring: this.keyring,
      brokerSigningKeys: this.brokerSigningKeys,
      timeoutMs: this.opts.accessTimeoutMs ?? 60_000,
    };
  }

  /**
   * Stops the client. Every publish still pending resolves exactly: one between attempts as `not_stored`, one with an
   * attempt on the wire once that attempt is answered or times out, one waiting for its receipt as `stored`.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.directory?.stop();
    this.accessSub?.unsubscribe();
    for (const sub of [...this.subscriptions]) await sub.stop();
    await this.durable.close();
    // Publishes still waiting for a receipt were stored: they resolve as 'stored'.
    for (const waiting of [...this.pending.values()]) waiting.settle(undefined);
    this.receiptSub.unsubscribe();
    // During an outage nothing waits for the server (a drain or flush would wait for the reconnect).
    const live = this.watch.connected;
    this.watch.stop();
    if (this.opts.ownsConnection === true) {
      if (live)
        await this.opts.nc.drain(); // the publisher closes with the connection
      else await this.opts.nc.close();
    } else {
      // A connection the caller keeps: its reply subscription and status watch go.
      this.acked.close();
      // The UNSUB reaches the server before close() resolves: no receipt for this client arrives afterwards.
      if (live) await this.opts.nc.flush().catch(() => undefined);
    }
  }
}
