// Default-deny NATS permissions for every identity, generated from the catalog (pure). NATS authorization
// (https://docs.nats.io/running-a-nats-service/configuration/securing_nats/authorization): with an `allow` list
// everything else is denied, and `deny` wins over `allow`. Subscribe permissions do not limit what a client
// reads through the JetStream API (nats-server issues #4225, #3202): a client allowed to publish to
// `$JS.API.DIRECT.GET.*`, `$JS.API.STREAM.MSG.GET.*` or to create a consumer with any filter reads any stream
// without ever subscribing to its subjects. So each identity gets exactly the API subjects the code it runs
// sends (src/sdk/client.ts, src/nats/setup.ts, src/broker/broker.ts, src/audit/writer.ts, src/consent/view.ts,
// src/registry/store.ts, src/access/desk/store.ts and desk.ts, read against nats.js 2.29), each scoped to one stream, and the
// dangerous API families are denied explicitly as well, so a future widening of an allow cannot reopen them.
// 2.9.10 has no per-stream protection against update/delete: those are the admin identity's alone.
import { parseScope } from '../catalog/partner.js';
import { type Catalog } from '../catalog/types.js';
import { BROKER_ID, RAW_TYPE } from '../wire/ids.js';
import {
  ADMIN_IDENTITY,
  AUDITOR_IDENTITY,
  BROKER_IDENTITY,
  GATEWAY_IDENTITY,
  OPERATOR_IDENTITY,
  natsUser,
  serviceIdentity,
  type Identity,
} from '../tls/identity.js';
import { jsApi } from './jetstream-api.js';
import {
  BROKER_CONSUMER,
  BROKER_QUEUE,
  KV_BUCKETS,
  OBJECT_STORES,
  STREAMS,
  deliveryConsumer,
  inboxPrefix,
  replies,
  subjects,
} from '../wire/names.js';

export interface SubjectRule {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

export interface IdentityPermissions {
  readonly identity: Identity;
  /** The NATS user the identity's certificate maps to (verify_and_map). */
  readonly user: string;
  /** The inbox prefix the identity must connect with (nats.js `inboxPrefix`). */
  readonly inboxPrefix: string;
  readonly publish: SubjectRule;
  readonly subscribe: SubjectRule;
}

/** The admin identity's inbox: `_` cannot start a service id, so it never collides with one. */
export const ADMIN_INBOX_ID = '_admin';
/** The operator identity's inbox (as the admin's: never a service's). */
export const OPERATOR_INBOX_ID = '_operator';
/** The auditor identity's inbox (as the admin's: never a service's). */
export const AUDITOR_INBOX_ID = '_auditor';
/** The partner gateways' inbox (as the admin's: never a service's). */
export const GATEWAY_INBOX_ID = '_gateway';

/** The inbox prefix an identity must connect with (nats.js `inboxPrefix`) under these permissions. */
export function identityInbox(identity: Identity): string {
  if (identity.kind === 'admin') return `_INBOX.${ADMIN_INBOX_ID}`;
  if (identity.kind === 'operator') return `_INBOX.${OPERATOR_INBOX_ID}`;
  if (identity.kind === 'auditor') return `_INBOX.${AUDITOR_INBOX_ID}`;
  if (identity.kind === 'gateway') return `_INBOX.${GATEWAY_INBOX_ID}`;
  return inboxPrefix(identity.id);
}

/** The durable delivery consumers a subscriber may use, with the filter each must have. */
export function deliveryDurables(
  catalog: Catalog,
  service: string,
): { readonly name: string; readonly filter: string }[] {
  const types = [...catalog.topics.values()]
    .filter((t) => t.subscribers.some((s) => s.service === service))
    .map((t) => t.resourceType)
    .sort();
  if (types.length === 0) return [];
  return [
    { name: deliveryConsumer(service), filter: subjects.deliverFilter(service) },
    ...types.map((type) => ({ name: deliveryConsumer(service, type), filter: subjects.deliverFilter(service, type) })),
  ];
}

/** API families neither a service nor the broker may use: stream and consumer management, listing, cluster. */
const MANAGEMENT: readonly string[] = [
  jsApi.streamList,
  jsApi.streamNames,
  `$JS.API.STREAM.CREATE.>`,
  `$JS.API.STREAM.UPDATE.>`,
  `$JS.API.STREAM.DELETE.>`,
  `$JS.API.STREAM.PURGE.>`,
  `$JS.API.STREAM.MSG.DELETE.>`,
  `$JS.API.STREAM.SNAPSHOT.>`,
  `$JS.API.STREAM.RESTORE.>`,
  `$JS.API.STREAM.PEER.>`,
  `$JS.API.STREAM.LEADER.>`,
  jsApi.consumerDurableCreateAny,
  jsApi.consumerDeleteAny,
  jsApi.consumerListAny,
  jsApi.consumerNamesAny,
  jsApi.consumerLeaderAny,
  jsApi.metaAny,
  jsApi.serverAny,
  jsApi.accountAny,
];

/** The partner gateways' buckets (jti replay, idempotent answers, rate limits, Subscriptions and their events). */
const GATEWAY_BUCKETS: readonly string[] = [
  KV_BUCKETS.gatewayJti,
  KV_BUCKETS.gatewayRequests,
  KV_BUCKETS.gatewayRate,
  KV_BUCKETS.gatewaySubscriptions,
  KV_BUCKETS.gatewayEvents,
];
/** The broker's KV buckets. */
const BROKER_BUCKETS: readonly string[] = Object.values(KV_BUCKETS).filter((b) => !GATEWAY_BUCKETS.includes(b));
const KV_STREAMS: readonly string[] = BROKER_BUCKETS.map(jsApi.kvStream);
const ACCESS_ANSWERS_STREAM = jsApi.objStream(OBJECT_STORES.accessAnswers);
const KEY_DIRECTORY_STREAM = jsApi.kvStream(KV_BUCKETS.keys);
/** What a key directory watch sends (src/nats/key-directory.ts): bind (stream info), an ordered consumer, flow control. */
const KEY_DIRECTORY_WATCH: readonly string[] = [
  jsApi.streamInfo(KEY_DIRECTORY_STREAM),
  ...jsApi.consumerCreateEphemeral(KEY_DIRECTORY_STREAM),
  jsApi.flowControl(KEY_DIRECTORY_STREAM),
];
/** Every stream and bucket but the key directory: no service creates a consumer on, or reads the info of, these. */
const NOT_KEY_DIRECTORY_STREAMS: readonly string[] = [
  ...Object.values(STREAMS),
  ...KV_STREAMS.filter((st) => st !== KEY_DIRECTORY_STREAM),
  ...Object.values(OBJECT_STORES).map(jsApi.objStream),
];

/** Streams and buckets only the broker (and the admin) touches. */
const BROKER_ONLY_STREAMS: readonly string[] = [
  STREAMS.ingest,
  STREAMS.deliver,
  STREAMS.quarantine,
  STREAMS.receipts,
  STREAMS.audit,
  STREAMS.auditWitness,
  STREAMS.disclosures,
  ...KV_STREAMS,
  ACCESS_ANSWERS_STREAM,
];

/** Broker subjects no service may publish to: the audit chain, alerts, disclosures, access requests and commands. */
const BROKER_SUBJECTS: readonly string[] = [
  subjects.deliverAll,
  subjects.quarantineAll,
  subjects.receiptsAll,
  subjects.auditAll,
  subjects.witnessAll,
  subjects.alertAll,
  subjects.disclosuresAll,
  subjects.accessAll,
  subjects.accessControl,
];

/**
 * Right of access from the SDK (src/access/protocol/service-request.ts): a catalog access requester may publish its own
 * phi.request.access.<service> (the broker answers on its inbox); every other service is denied all of phi.request.
 */
function accessRequestRule(catalog: Catalog, service: string): { allow: string[]; deny: string[] } {
  return catalog.access.requesters.includes(service)
    ? { allow: [subjects.accessRequest(service)], deny: [] }
    : { allow: [], deny: [subjects.requestAll] };
}

function servicePermissions(catalog: Catalog, service: string): IdentityPermissions {
  const identity = serviceIdentity(service);
  const durables = deliveryDurables(catalog, service);
  const inbox = inboxPrefix(service);
  const requests = accessRequestRule(catalog, service);
  return {
    identity,
    user: natsUser(identity),
    inboxPrefix: inbox,
    publish: {
      allow: [
        // Its own ingest subjects, every type token: a type it may not publish still reaches the broker, which
        // rejects it with E_NOT_AUTHORIZED and quarantines it (nothing vanishes at the transport).
        `phi.ingest.${service}.>`,
        jsApi.accountInfo,
        // Bind, fetch and ack on its own provisioned durables; never create or update one (a service could
        // otherwise turn it into a push consumer with a deliver subject of its choosing).
        ...durables.flatMap((d) => [
          jsApi.consumerInfo(STREAMS.deliver, d.name),
          jsApi.consumerNext(STREAMS.deliver, d.name),
          jsApi.ack(STREAMS.deliver, d.name),
        ]),
        ...requests.allow,
        // Its answers to the broker's access and part requests, on the reply subjects the broker names for them.
        replies.accessAnswers(service),
        // The key directory (public keys, signed by the operator root key): loaded and watched (docs/keys.md).
        ...KEY_DIRECTORY_WATCH,
      ],
      deny: [
        ...MANAGEMENT,
        // Consumers, stream info and flow control on every stream but the key directory's (deny wins in NATS).
        ...NOT_KEY_DIRECTORY_STREAMS.flatMap((st) => [
          ...jsApi.consumerCreateEphemeral(st),
          jsApi.streamInfo(st),
          jsApi.flowControl(st),
        ]),
        // The reads of #4225/#3202: direct get, message get.
        jsApi.directGetAny,
        `$JS.API.STREAM.MSG.GET.>`,
        jsApi.kvAny,
        jsApi.objAny,
        ...BROKER_SUBJECTS,
        ...requests.deny,
      ],
    },
    subscribe: {
      // phi.access.<self>: the broker's right-of-access requests to this service; phi.access.<self>.part.*: the
      // broker's requests for the parts of an answer larger than one message (src/access/protocol/parts.ts). Both are
      // answered on replies.accessAnswers(self); only the broker may publish on phi.access.>.
      allow: [subjects.receipt(service), subjects.access(service), subjects.accessParts(service), `${inbox}.>`],
      deny: [
        '$JS.>',
        jsApi.kvAny,
        jsApi.objAny,
        subjects.ingestAll,
        subjects.deliverAll,
        subjects.quarantineAll,
        subjects.auditAll,
        subjects.witnessAll,
        subjects.alertAll,
        subjects.disclosuresAll,
        subjects.accessControl,
        subjects.requestAll,
      ],
    },
  };
}

function brokerPermissions(catalog: Catalog): IdentityPermissions {
  const inbox = inboxPrefix(BROKER_ID);
  const subscribers = [
    ...new Set([...catalog.topics.values()].flatMap((t) => t.subscribers.map((s) => s.service))),
  ].sort();
  return {
    identity: BROKER_IDENTITY,
    user: natsUser(BROKER_IDENTITY),
    inboxPrefix: inbox,
    publish: {
      allow: [
        jsApi.accountInfo,
        // Streams are created and updated by the admin identity; the broker checks them (setup.ts skips an
        // update when nothing changed) and reads its KV buckets.
        ...BROKER_ONLY_STREAMS.map(jsApi.streamInfo),
        // Reads: the audit chain head and its last witnessed head (writer.ts, integrity.ts: last by subject), KV get
        // (direct get when the bucket allows it, else message get), object metadata (message get, last by subject).
        ...[STREAMS.audit, STREAMS.auditWitness, STREAMS.disclosures, ...KV_STREAMS].flatMap((s) => [
          jsApi.streamMsgGet(s),
          jsApi.directGet(s),
          jsApi.directGetAll(s),
        ]),
        jsApi.streamMsgGet(ACCESS_ANSWERS_STREAM),
        // KV get/create/update (registry CAS, access requests, replay cache). Not phi_consent nor phi_keys: written
        // by operators only (consent add/revoke, keys rotate/revoke); the broker reads and watches them.
        ...BROKER_BUCKETS.filter((b) => b !== KV_BUCKETS.consent && b !== KV_BUCKETS.keys).map(jsApi.kv),
        // KV watch (restrictions, src/consent/view.ts; the key directory) and keys (access list): ordered
        // consumers, with flow control.
        ...[jsApi.kvStream(KV_BUCKETS.consent), jsApi.kvStream(KV_BUCKETS.access), KEY_DIRECTORY_STREAM].flatMap(
          (s) => [...jsApi.consumerCreateEphemeral(s), jsApi.flowControl(s)],
        ),
        // Right-of-access answers, sealed (src/access/desk/store.ts putBlob): chunks and metadata.
        jsApi.obj(OBJECT_STORES.accessAnswers),
        // Its work queue.
        jsApi.consumerInfo(STREAMS.ingest, BROKER_CONSUMER),
        jsApi.consumerCreate(STREAMS.ingest, BROKER_CONSUMER),
        jsApi.consumerNext(STREAMS.ingest, BROKER_CONSUMER),
        jsApi.ack(STREAMS.ingest, BROKER_CONSUMER),
        // Checks that every subscriber's durables are provisioned (setup.ts ensureDeliveryConsumers; the admin
        // creates them), and publishes the deliveries.
        ...subscribers.flatMap((s) => [
          ...deliveryDurables(catalog, s).map((d) => jsApi.consumerInfo(STREAMS.deliver, d.name)),
          subjects.deliverFilter(s),
        ]),
        subjects.quarantineAll,
        subjects.receiptsAll,
        subjects.auditAll,
        subjects.witnessAll,
        subjects.alertAll,
        subjects.disclosuresAll,
        // Requests to each service's phi.access.<service>, and for the parts of a large answer on
        // phi.access.<service>.part.<token> (src/access/desk/desk.ts, fetch-parts.ts).
        subjects.accessAll,
        // Its answers to operator commands and services' access requests, under each requester's inbox.
        ...[
          identityInbox(ADMIN_IDENTITY),
          identityInbox(OPERATOR_IDENTITY),
          ...catalog.access.requesters.map(inboxPrefix),
        ].map(replies.desks),
      ],
      deny: [
        ...MANAGEMENT,
        subjects.ingestAll,
        subjects.accessControl,
        subjects.requestAll,
        jsApi.kv(KV_BUCKETS.consent),
        ...GATEWAY_BUCKETS.map(jsApi.kv),
        jsApi.kv(KV_BUCKETS.keys),
      ],
    },
    subscribe: {
      // Operator commands to the AccessDesk, only in the brokers' queue group (NATS "<subject> <queue>"
      // permission), answered on replies.desk.
      // Services' access requests (SDK) likewise, queue group only (src/access/desk/service-requests.ts).
      allow: [
        `${inbox}.>`,
        `${subjects.accessControl} ${BROKER_QUEUE}`,
        `${subjects.accessRequestAll} ${BROKER_QUEUE}`,
      ],
      deny: ['$JS.>', subjects.ingestAll, subjects.deliverAll],
    },
  };
}

/**
 * Provisioning (nats-provision, up's own provisioning step): the whole JetStream API and flow control of its
 * ordered consumers. It can also run the operator commands as break-glass (PHI_BROKER_OPERATOR_IDENTITY=admin):
 * writes to the consent bucket and the access commands to the broker. Never a PHI subject of the message path.
 */
function adminPermissions(): IdentityPermissions {
  const inbox = `_INBOX.${ADMIN_INBOX_ID}`;
  return {
    identity: ADMIN_IDENTITY,
    user: natsUser(ADMIN_IDENTITY),
    inboxPrefix: inbox,
    publish: {
      allow: [
        jsApi.all,
        jsApi.flowControlAny,
        jsApi.kv(KV_BUCKETS.consent),
        // `up` publishes the key directory from the keys it provisioned.
        jsApi.kv(KV_BUCKETS.keys),
        subjects.accessControl,
        ...operatorAuditAppend(),
      ],
      deny: [],
    },
    subscribe: { allow: [`${inbox}.>`], deny: [] },
  };
}

/**
 * An operator command's own audit chain (`phi.audit.cli.<id>`, its witness) and reading a chain's last record and
 * head: never a broker's or gateway's chain, so an operator can neither insert into nor halt one.
 */
function operatorAuditAppend(): string[] {
  return [
    subjects.operatorAuditAll,
    subjects.operatorWitnessAll,
    ...[STREAMS.audit, STREAMS.auditWitness].flatMap((s) => [jsApi.streamMsgGet(s), jsApi.directGet(s)]),
  ];
}

/** The streams the read-only operator commands read (src/cli/audit.ts, disclosures.ts, quarantine.ts). */
const AUDITOR_READ_STREAMS: readonly string[] = [
  STREAMS.audit,
  STREAMS.auditWitness,
  STREAMS.disclosures,
  STREAMS.quarantine,
];
/** The KV buckets they read (registry show, access status/list/export, consent list). */
const AUDITOR_KV_STREAMS: readonly string[] = [
  KV_BUCKETS.registry,
  KV_BUCKETS.access,
  KV_BUCKETS.consent,
  KV_BUCKETS.keys,
].map(jsApi.kvStream);

/**
 * The JetStream API subjects nats.js 2.29 sends for the operator commands' reads, and no others: stream and account
 * info, stream names, direct and message get, ephemeral and ordered consumers (docs/security-model.md, auditor row).
 */
function operatorReads(): string[] {
  const pulled = [STREAMS.audit, STREAMS.auditWitness, STREAMS.disclosures];
  const ordered = [
    jsApi.kvStream(KV_BUCKETS.consent),
    jsApi.kvStream(KV_BUCKETS.access),
    KEY_DIRECTORY_STREAM,
    ACCESS_ANSWERS_STREAM,
  ];
  return [
    jsApi.accountInfo,
    jsApi.streamNames,
    ...[...AUDITOR_READ_STREAMS, ...AUDITOR_KV_STREAMS, ACCESS_ANSWERS_STREAM].map(jsApi.streamInfo),
    ...AUDITOR_KV_STREAMS.flatMap((s) => [jsApi.streamMsgGet(s), jsApi.directGet(s), jsApi.directGetAll(s)]),
    jsApi.streamMsgGet(STREAMS.quarantine),
    jsApi.streamMsgGet(ACCESS_ANSWERS_STREAM),
    ...pulled.flatMap((s) => [
      ...jsApi.consumerCreateEphemeral(s),
      jsApi.consumerInfo(s, '*'),
      jsApi.consumerNext(s, '*'),
    ]),
    ...ordered.flatMap((s) => [...jsApi.consumerCreateEphemeral(s), jsApi.flowControl(s)]),
  ];
}

/**
 * Stream, consumer and bucket management no operator command needs: create, update, delete, purge, message delete,
 * snapshot, restore, leader moves, legacy durable create, consumer delete and list. Denied explicitly (deny wins
 * over allow in NATS), so the admin identity alone can change a stream — PHI_AUDIT's max_age or its existence.
 */
const OPERATOR_MANAGEMENT: readonly string[] = MANAGEMENT.filter((s) => s !== jsApi.streamNames);

/**
 * The read-only operator commands: operatorReads, and the audit record of what they read (operatorAuditAppend); no
 * data subject, no management, no phi.control.access.
 */
function auditorPermissions(): IdentityPermissions {
  const inbox = identityInbox(AUDITOR_IDENTITY);
  return {
    identity: AUDITOR_IDENTITY,
    user: natsUser(AUDITOR_IDENTITY),
    inboxPrefix: inbox,
    publish: {
      allow: [...operatorReads(), ...operatorAuditAppend()],
      deny: [
        ...OPERATOR_MANAGEMENT,
        '$JS.ACK.>',
        jsApi.kvAny,
        jsApi.objAny,
        subjects.ingestAll,
        ...BROKER_SUBJECTS.filter((s) => s !== subjects.auditAll && s !== subjects.witnessAll),
        subjects.requestAll,
      ],
    },
    subscribe: { allow: [`${inbox}.>`], deny: ['$JS.>', jsApi.kvAny, jsApi.objAny, 'phi.>'] },
  };
}

/**
 * The routine operator commands: the auditor's reads plus their writes, restrictions (`$KV.phi_consent.>`), the key
 * directory (`$KV.phi_keys.>`, entries signed by the operator root key) and access commands (`phi.control.access`); no stream, bucket or consumer management (docs/security-model.md).
 */
function operatorPermissions(): IdentityPermissions {
  const inbox = identityInbox(OPERATOR_IDENTITY);
  const otherBuckets = Object.values(KV_BUCKETS)
    .filter((b) => b !== KV_BUCKETS.consent && b !== KV_BUCKETS.keys)
    .map(jsApi.kv);
  return {
    identity: OPERATOR_IDENTITY,
    user: natsUser(OPERATOR_IDENTITY),
    inboxPrefix: inbox,
    publish: {
      allow: [
        ...operatorReads(),
        jsApi.kv(KV_BUCKETS.consent),
        jsApi.kv(KV_BUCKETS.keys),
        subjects.accessControl,
        ...operatorAuditAppend(),
      ],
      deny: [
        ...OPERATOR_MANAGEMENT,
        '$JS.ACK.>',
        ...otherBuckets,
        jsApi.objAny,
        subjects.ingestAll,
        ...BROKER_SUBJECTS.filter(
          (s) => s !== subjects.accessControl && s !== subjects.auditAll && s !== subjects.witnessAll,
        ),
        subjects.requestAll,
      ],
    },
    subscribe: { allow: [`${inbox}.>`], deny: ['$JS.>', jsApi.kvAny, jsApi.objAny, 'phi.>'] },
  };
}

/**
 * The ingest subjects the gateway may publish on: each partner's, for each type a `c` scope of its registration
 * names, and its raw subject (input that is not JSON goes out raw, so the broker rejects and quarantines it).
 */
export function gatewayIngestSubjects(catalog: Catalog): string[] {
  const out: string[] = [];
  for (const service of [...catalog.services.values()].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const types = (service.partner?.scopes ?? [])
      .map(parseScope)
      .filter((p) => p?.permissions.includes('c') === true)
      .map((p) => p?.resourceType as string);
    if (types.length > 0) out.push(...[...types, RAW_TYPE].map((t) => subjects.ingest(service.id, t)));
  }
  return out;
}

/**
 * The partner gateways (docs/security-model.md, gateway row): their buckets (GATEWAY_BUCKETS), their own audit
 * chains (`phi.audit.gw.<id>`), and the SDK's two subjects as each partner it fronts — that partner's ingest subject of each type it may
 * create, and its receipt subject. No delivery, no other bucket, no management, no control subject.
 */
function gatewayPermissions(catalog: Catalog): IdentityPermissions {
  const inbox = identityInbox(GATEWAY_IDENTITY);
  const partners = [...catalog.services.values()]
    .filter((s) => s.partner !== undefined)
    .map((s) => s.id)
    .sort();
  const buckets = GATEWAY_BUCKETS;
  return {
    identity: GATEWAY_IDENTITY,
    user: natsUser(GATEWAY_IDENTITY),
    inboxPrefix: inbox,
    publish: {
      allow: [
        jsApi.accountInfo,
        // KV bind (stream info), get (direct or message get), create: src/gateway/jti.ts, idempotency.ts.
        ...buckets
          .map(jsApi.kvStream)
          .flatMap((s) => [jsApi.streamInfo(s), jsApi.streamMsgGet(s), jsApi.directGet(s), jsApi.directGetAll(s)]),
        ...buckets.map(jsApi.kv),
        // Its audit chains (src/audit/writer.ts): the chain head (last by subject), the records and witnessed heads,
        // appended on `phi.audit.gw.<id>` only — never a broker's or an operator command's chain.
        ...[STREAMS.audit, STREAMS.auditWitness].flatMap((s) => [
          jsApi.streamInfo(s),
          jsApi.streamMsgGet(s),
          jsApi.directGet(s),
          jsApi.directGetAll(s),
        ]),
        subjects.gatewayAuditAll,
        subjects.gatewayWitnessAll,
        subjects.alertAll,
        ...gatewayIngestSubjects(catalog),
        // The key directory (public keys, signed by the operator root key): loaded and watched (docs/keys.md).
        ...KEY_DIRECTORY_WATCH,
      ],
      deny: [
        ...MANAGEMENT,
        // No consumer on any stream but the key directory's (deny wins in NATS).
        ...[...NOT_KEY_DIRECTORY_STREAMS, ...buckets.map(jsApi.kvStream)].flatMap(jsApi.consumerCreateEphemeral),
        '$JS.ACK.>',
        jsApi.objAny,
        ...BROKER_BUCKETS.map(jsApi.kv),
        subjects.deliverAll,
        subjects.quarantineAll,
        subjects.receiptsAll,
        subjects.disclosuresAll,
        subjects.accessAll,
        subjects.accessControl,
        subjects.requestAll,
      ],
    },
    subscribe: {
      allow: [`${inbox}.>`, ...partners.map((p) => subjects.receipt(p))],
      deny: [
        '$JS.>',
        jsApi.kvAny,
        jsApi.objAny,
        subjects.ingestAll,
        subjects.deliverAll,
        subjects.quarantineAll,
        subjects.auditAll,
        subjects.witnessAll,
        subjects.alertAll,
        subjects.disclosuresAll,
        subjects.accessAll,
        subjects.accessControl,
        subjects.requestAll,
      ],
    },
  };
}

/** Every identity's permissions: one per catalog service, the broker, the admin, the operator, the auditor, the gateway. */
export function natsPermissions(catalog: Catalog): IdentityPermissions[] {
  return [
    ...[...catalog.services.keys()].sort().map((s) => servicePermissions(catalog, s)),
    brokerPermissions(catalog),
    gatewayPermissions(catalog),
    adminPermissions(),
    operatorPermissions(),
    auditorPermissions(),
  ];
}
