// A partner gateway process's worth of parts (DESIGN.md "Partner gateway"): its own audit chain in PHI_AUDIT, the
// shared jti and rate-limit buckets, the shared token key and the HTTPS server. Stateless between requests — what a
// second instance needs lives in NATS (jti, idempotency, rate counts) or in the data dir (the token key) — so
// gateways run side by side.
import type { KeyFileStore } from '../crypto/key-envelope.js';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { NatsConnection } from 'nats';
import { AuditTrail } from '../audit/trail.js';
import { defaultInstanceId } from '../audit/instance.js';
import type { Catalog } from '../catalog/types.js';
import type { BrokerConfig } from '../config/config.js';
import { errorFields, type Logger } from '../log/log.js';
import type { PublicKeyRecord, ServiceKeys } from '../crypto/keys.js';
import { PhiClient } from '../sdk/client.js';
import { PUBLISH_DEADLINE_DEFAULT_MS } from '../wire/publish.js';
import { RequestStore } from './idempotency.js';
import {
  ensureGatewayJtiBucket,
  ensureGatewayRateBucket,
  ensureGatewayRequestsBucket,
  ensureGatewaySubscriptionBuckets,
} from '../nats/setup.js';
import { Keyring } from '../crypto/keyring.js';
import { BROKER_ID } from '../wire/ids.js';
import { KeyringFollower } from '../nats/key-directory.js';
import { gatewayChain } from '../wire/names.js';
import { httpsDeliverer } from './subscriptions/rest-hook.js';
import { SubscriptionStore } from './subscriptions/store.js';
import type { SubscriptionRecord } from './subscriptions/model.js';
import type { NotificationEvent } from './subscriptions/notify.js';
import {
  DEFAULT_LEASE_MS,
  DEFAULT_RETRY,
  TopicWorker,
  readIndexKey,
  type Deliverer,
  type EventOpener,
  type RetryPolicy,
} from './subscriptions/worker.js';
import { JtiStore } from './jti.js';
import type { JwksFetchOptions } from './partner-jwks.js';
import { RATE_COUNT_TIMEOUT_MS, RateCounter } from './rate-limit.js';
import { buildGatewayServer } from './server.js';
import { TokenSigner } from './token-signer.js';
import { GatewayKeyView } from './key-directory.js';
import { partyOfKid, type DirectoryEntry, type OperatorRootKey } from '../crypto/key-directory.js';

export interface GatewayOptions {
  readonly config: BrokerConfig;
  readonly catalog: Catalog;
  /** A connection as the gateway identity: its buckets, its audit chain, each partner's ingest and receipt subjects. */
  readonly nc: NatsConnection;
  /**
   * The gateways' own key versions (party `gateway`), current first: the current signing key signs the audit chain's
   * checkpoints; with the key directory, the version it names current from then on (docs/keys.md).
   */
  readonly auditKeys: ServiceKeys | readonly ServiceKeys[];
  /**
   * The service key versions of each partner the gateway publishes for (a partner with a `c` scope), by service id:
   * it seals and signs as that partner (docs/security-model.md, "Partner keys").
   */
  readonly partnerKeys: ReadonlyMap<string, ServiceKeys | readonly ServiceKeys[]>;
  /** Public keys of the broker (its receipts' signatures and the key it seals to). */
  readonly peers: readonly PublicKeyRecord[];
  /** Where the shared token key file lives (the data dir's keys/). */
  readonly keysDir: string;
  /** How the token key file is read and created: sealed under the key provider, or plain (the default). */
  readonly keyFiles?: KeyFileStore;
  /**
   * The HTTPS certificate and key; `clientCaFile`: the CA partners' client certificates are verified with (RFC 8705
   * mutual TLS; without it no client certificate is requested and a partner with `mtls` gets no token).
   */
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile?: string };
  /** How partners' JWKS URLs are fetched: timeout, cooldown, cache age, CA (default DEFAULT_JWKS_FETCH). */
  readonly jwksFetch?: JwksFetchOptions;
  readonly logger: Logger;
  /** This gateway's instance id (its audit chain is `gw.<id>`); default `<host>-<pid>-<random>`. */
  readonly instanceId?: string;
  readonly version?: string;
  readonly now?: () => number;
  /**
   * What the gateway needs to deliver a partner's notifications: a connection as the partner's own NATS identity
   * (it reads and acknowledges the partner's delivery durables) and the partner's keys. Absent: no notifications.
   */
  readonly partnerAccess?: (service: string) => Promise<PartnerAccess>;
  /** PEM CA certificates rest-hook endpoints are verified with (default: Node's root store). */
  readonly restHookCa?: string;
  readonly retry?: RetryPolicy;
  /** How long a gateway holds a topic's delivery lease between renewals. */
  readonly leaseMs?: number;
  /**
   * The key directory (docs/keys.md): watched for the JWKS, partners' client keys, the audit key and every partner
   * keyring, so rotations and revocations apply without a restart; `reloadOwnKeys` reads a party's key versions
   * (the gateway's own, a partner's) when the directory names a current one not held. Absent: jwks.json (`peers`),
   * the catalog and the keys given only.
   */
  readonly keyDirectory?: {
    readonly root: OperatorRootKey;
    readonly reloadOwnKeys?: (party: string) => Promise<readonly ServiceKeys[]>;
  };
  /** The least `backport-heartbeat-period` a Subscription may ask, seconds (default 10). */
  readonly heartbeatMinS?: number;
}

export interface PartnerAccess {
  readonly nc: NatsConnection;
  /** The partner's key versions, current first (a previous version opens deliveries sealed to it). */
  readonly keys: ServiceKeys | readonly ServiceKeys[];
  readonly peers: readonly PublicKeyRecord[];
}

export class Gateway {
  private constructor(
    private readonly app: FastifyInstance,
    private readonly audit: AuditTrail,
    private readonly clients: readonly PhiClient[],
    private readonly workers: readonly TopicWorker[],
    private readonly keys: GatewayKeyView,
    /** Where it listens, e.g. `https://127.0.0.1:8443`. */
    readonly url: string,
    /** The public base URL partners use. */
    readonly baseUrl: string,
    readonly instanceId: string,
  ) {}

  /** Its audit chain (subject `phi.audit.gw.<instance id>`). */
  get chain(): string {
    return gatewayChain(this.instanceId);
  }

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const { config, logger } = opts;
    const now = opts.now ?? Date.now;
    const instanceId = opts.instanceId ?? defaultInstanceId();
    const chain = gatewayChain(instanceId);
    const kv = await ensureGatewayJtiBucket(opts.nc);
    const requests = new RequestStore(
      await ensureGatewayRequestsBucket(opts.nc),
      // A claim outlives any publish it covers (the SDK's deadline) before another gateway may take it over.
      PUBLISH_DEADLINE_DEFAULT_MS + 60_000,
      now,
    );
    const signer = await TokenSigner.open(opts.keysDir, opts.keyFiles);
    const reload = opts.keyDirectory?.reloadOwnKeys;
    // Each keyring the directory keeps in step, with the parties whose entries it takes.
    const followers: { readonly follower: KeyringFollower; readonly parties: readonly string[] }[] = [];
    const follow = (
      keyring: Keyring,
      parties: readonly string[],
      onApplied?: (entry: DirectoryEntry) => void,
    ): void => {
      const party = keyring.service;
      const follower = new KeyringFollower(
        keyring,
        logger,
        reload === undefined ? undefined : () => reload(party),
        onApplied,
      );
      followers.push({ follower, parties });
    };
    const auditKeys = new Keyring(opts.auditKeys);
    follow(auditKeys, [auditKeys.service]);
    // Each partner's keyring (opened once), for workers and for $events: every version of its key file, so a
    // delivery sealed to a previous version opens; a broker rotation adds the broker's new signing key.
    const openers = new Map<string, EventOpener>();
    const access = new Map<string, PartnerAccess>();
    if (opts.partnerAccess !== undefined)
      for (const s of opts.catalog.services.values()) {
        if (s.partner === undefined) continue;
        const a = await opts.partnerAccess(s.id);
        access.set(s.id, a);
        const keyring = new Keyring(a.keys, [...a.peers]);
        const brokerSigningKeys = new Set(
          a.peers.filter((p) => p.service === BROKER_ID && p.use === 'sig').map((p) => p.kid),
        );
        follow(keyring, [s.id, BROKER_ID], (entry) => {
          if (entry.party !== BROKER_ID) return;
          for (const k of entry.keys)
            if (k.jwk.use === 'sig' && (k.status === 'active' || k.status === 'retiring'))
              brokerSigningKeys.add(k.jwk.kid);
        });
        openers.set(s.id, { partner: s.id, readKey: readIndexKey(firstVersion(a.keys)), keyring, brokerSigningKeys });
      }
    const keyView =
      opts.keyDirectory === undefined
        ? GatewayKeyView.fixed(opts.peers)
        : await GatewayKeyView.watch(opts.nc, opts.keyDirectory.root, logger, {
            tokenKeys: (active) => {
              // A rotation names a token key this gateway does not hold yet: read the key file again.
              if (active.some((kid) => !signer.holds(kid)))
                signer.reload().then(
                  (kids) => logger.info({ event: 'keys.own.rotated', party: 'gateway', kids }, 'token keys reloaded'),
                  (err: unknown) =>
                    logger.error(
                      { event: 'keys.own.unreadable', party: 'gateway', ...errorFields(err) },
                      'the token key file could not be read again; signing with the keys held',
                    ),
                );
            },
            entry: (entry) => {
              for (const { follower, parties } of followers) if (parties.includes(entry.party)) follower.apply(entry);
            },
          });
    await Promise.all(followers.map((f) => f.follower.settled()));
    if (opts.keyDirectory !== undefined) signer.followDirectory((kid) => keyView.tokenStatus(kid, now()));
    const clients = new Map<string, PhiClient>();
    for (const [service, keys] of opts.partnerKeys)
      clients.set(
        service,
        await PhiClient.connect({
          nc: opts.nc,
          service,
          keys,
          peers: opts.peers,
          logger: opts.logger,
          ...(opts.keyDirectory === undefined
            ? {}
            : {
                keyDirectory: {
                  root: opts.keyDirectory.root,
                  ...(reload === undefined ? {} : { reloadOwnKeys: () => reload(service) }),
                },
              }),
        }),
      );
    const buckets = await ensureGatewaySubscriptionBuckets(opts.nc, config.deliverMaxAgeMs);
    const store = new SubscriptionStore(buckets.subscriptions, buckets.events);
    const deliverer: Deliverer = httpsDeliverer(opts.restHookCa);
    const audit = await AuditTrail.open({
      nc: opts.nc,
      settings: { ...config, instanceId: chain },
      // The current audit key, as the directory names it: checkpoints follow `keys rotate --gateway`.
      signer: () => auditKeys.signerInOverlap(),
      publicKeys: (kid) => (partyOfKid(kid) === auditKeys.service ? auditKeys.heldSigningKey(kid) : undefined),
      logger,
      now,
      recorder: 'gateway',
    });
    // Every notification, $events read and GET /[type]/[id] is an AuditEvent in this gateway's chain, stored before
    // it returns. Heartbeats carry no event and no PHI: logged, not audited.
    const disclosed = async (
      operation: 'notify' | 'events' | 'read',
      sub: SubscriptionRecord,
      events: readonly NotificationEvent[],
    ): Promise<void> => {
      const profile = opts.catalog.topics
        .get(sub.resourceType)
        ?.subscribers.find((x) => x.service === sub.partner)?.profile;
      const profileUrl = profile === undefined ? undefined : opts.catalog.profiles.get(profile)?.url;
      await audit.record([
        {
          kind: 'partner-notification',
          operation,
          service: sub.partner,
          subscription: sub.id,
          events: events.map((e) => e.number),
          deliveryIds: events.map((e) => e.deliveryId),
          ...(profileUrl === undefined ? {} : { profileUrl }),
        },
      ]);
    };
    let app: FastifyInstance | undefined;
    try {
      const port = config.gatewayPort;
      // With port 0 the base URL is only known once listening; the server reads it per request.
      let baseUrl = config.gatewayBaseUrl ?? `https://localhost:${port}`;
      const holder = { baseUrl };
      app = await buildGatewayServer({
        catalog: opts.catalog,
        tls: {
          key: readFileSync(opts.tls.keyFile, 'utf8'),
          cert: readFileSync(opts.tls.certFile, 'utf8'),
          ...(opts.tls.clientCaFile === undefined ? {} : { clientCa: readFileSync(opts.tls.clientCaFile, 'utf8') }),
        },
        ...(opts.jwksFetch === undefined ? {} : { jwksFetch: opts.jwksFetch }),
        baseUrl: () => holder.baseUrl,
        jti: new JtiStore(kv),
        rate: new RateCounter(await ensureGatewayRateBucket(opts.nc, undefined, RATE_COUNT_TIMEOUT_MS), now, logger),
        signer,
        keys: keyView,
        subscriptions: {
          store,
          deliverer,
          opener: (partner) => openers.get(partner),
          onRead: (sub, events, operation) => disclosed(operation, sub, events),
          // A create or delete is the partner's RESTful interaction on its subscription, in this gateway's chain.
          onRequest: ({ interaction, ...r }) =>
            audit.record([{ kind: 'partner-request', interaction, ...r, messageIds: [] }]),
          ...(opts.heartbeatMinS === undefined ? {} : { limits: { heartbeatMinS: opts.heartbeatMinS } }),
        },
        audit,
        logger,
        version: opts.version ?? '0.1.0',
        now,
        inbound: { clients, requests },
      });
      await app.listen({ host: config.gatewayHost, port });
      const address = app.server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      if (config.gatewayBaseUrl === undefined) baseUrl = `https://localhost:${bound}`;
      holder.baseUrl = baseUrl;
      const url = `https://${config.gatewayHost.includes(':') ? `[${config.gatewayHost}]` : config.gatewayHost}:${bound}`;
      logger.info({ event: 'gateway.listening', url, baseUrl, chain }, 'partner gateway listening');
      // One worker per topic each partner receives; the KV lease picks which instance delivers it.
      const workers: TopicWorker[] = [];
      for (const [partner, a] of access) {
        const opener = openers.get(partner);
        if (opener === undefined) continue;
        for (const topic of opts.catalog.topics.values()) {
          if (!topic.subscribers.some((sub) => sub.service === partner)) continue;
          workers.push(
            new TopicWorker({
              ...opener,
              type: topic.resourceType,
              partnerNc: a.nc,
              store,
              holder: instanceId,
              baseUrl: () => holder.baseUrl,
              sign: (body) => signer.signDetached(body),
              deliverer,
              onNotified: (sub, events) => disclosed('notify', sub, events),
              logger,
              retry: opts.retry ?? DEFAULT_RETRY,
              leaseMs: opts.leaseMs ?? DEFAULT_LEASE_MS,
            }),
          );
        }
      }
      return new Gateway(app, audit, [...clients.values()], workers, keyView, url, baseUrl, instanceId);
    } catch (err) {
      await app?.close();
      for (const c of clients.values()) await c.close();
      keyView.stop();
      await audit.close();
      throw err;
    }
  }

  /** Stops notifying (giving up its leases), stops taking requests, finishes those in flight, seals the audit chain. */
  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.app.close();
    for (const c of this.clients) await c.close();
    this.keys.stop();
    await this.audit.close();
  }
}

function firstVersion(keys: ServiceKeys | readonly ServiceKeys[]): ServiceKeys {
  const first = Array.isArray(keys) ? (keys as readonly ServiceKeys[])[0] : (keys as ServiceKeys);
  if (first === undefined) throw new TypeError('a partner needs at least one key version');
  return first;
}
