// buildAuditEvent: one broker decision (an AuditFact) as a FHIR R4 AuditEvent
// (http://hl7.org/fhir/R4/auditevent.html) in the shape of IHE Basic Audit Log Patterns (BALP):
//   accepted     → type rest, subtype restful-interaction#create, action C, outcome 0; agents: the publisher
//                  (Source Role ID, requestor) and the broker (Destination Role ID)   — BALP Create
//   rejected     → the same with outcome 4 (8 for E_INTERNAL) and outcomeDesc = code and element path; a throttled
//                  window's summary (E_SENDER_THROTTLED) carries the count and the codes instead
//   delivered    → type DCM 110106 Export, subtype ISO 21089 disclose, action R, purposeOfEvent; agents: the
//                  broker (source) and the subscriber (destination, with purposeOfUse)
//                                                                  — BALP Privacy Disclosure at the source
//   withheld     → the same with outcome 4 and the code
//   quarantined  → type rest, subtype create, action C: the broker stored the sealed input
//   broker-start/stop → DCM 110100 Application Activity, subtype 110120 / 110121, action E
//   catalog-loaded    → DCM 110113 Security Alert, subtype 110129 Security Configuration, with the catalog hash
//   alert        → DCM 110113 Security Alert, subtype the rule (urn:phi-broker:alert-rule)
//   security-incident → DCM 110113 Security Alert, subtype DCM 110132 Use of Restricted Function (permission
//                  violation) or 110126 Node Authentication (TLS, authentication) and the kind
//                  (urn:phi-broker:security-incident), action E, outcome 4; agents: the client (requestor) and
//                  nats-server (the application that refused it); entities: the subjects refused and the count
//   access       → DCM 110110 Patient Record, subtype the step (urn:phi-broker:access-step), purposeOfEvent PATRQT;
//                  agents: the requesting service (source, requestor) when a service filed it, the broker, the services asked
//   access-refused → the same type, subtype `refused`, outcome 4: a service's request the broker refused
// Entities: the patient as the broker's keyed pseudonym (entity type 1 Person, role 1 Patient) — never the
// patient id; the resource (type 2 System Object, role 4 Domain Resource) by type and the keyed pseudonym of
// `<Type>/<id>` (a logical id may embed an identifier), a Patient by type only; the message id as BALP's transaction entity.
// The facts carry those pseudonyms already computed (facts.ts): the builder holds no key and sees no reference.
// Pure: ids and clock are injected.
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding } from 'fhir/r4.js';
import {
  AGENT,
  BALP_ENTITY_TYPE,
  BALP_PROFILE,
  ENTITY_TYPE,
  OBJECT_ROLE,
  OUTCOME,
  PURPOSE_OF_USE,
  SOURCE_TYPE,
  SUBTYPE,
  SYSTEM,
  TYPE,
  type Outcome,
} from './codes.js';
import type { AuditActor, AuditFact, AuditSubject, OperatorActionFact } from './facts.js';
import { subjects } from '../wire/names.js';

export interface EventContext {
  /** This broker process's instance id (the chain it writes; AuditEvent.source.observer). */
  readonly instanceId: string;
  /** The broker's host name (its agent's network address). */
  readonly host?: string;
  readonly now: () => number;
  readonly newId: () => string;
  /** What writes this chain: its agent is the one whose `who` is source.observer (BALP val-audit-source). Default broker. */
  readonly recorder?: Recorder;
}

/** The processes that write audit chains: the broker, the partner gateway, an operator command. */
export type Recorder = 'broker' | 'gateway' | 'cli';
const RECORDER_DISPLAY: Readonly<Record<Recorder, string>> = {
  broker: 'phi-broker',
  gateway: 'phi-broker partner gateway',
  cli: 'phi-broker command',
};

// Constant parts are built once, frozen and shared by every event (the hot path builds one event per
// delivery). Nothing mutates an event after it is built.
function shared<T extends object>(value: T): T {
  for (const v of Object.values(value)) if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) shared(v);
  return Object.freeze(value);
}
for (const coding of [...Object.values(TYPE), ...Object.values(SUBTYPE), ...Object.values(AGENT)]) shared(coding);
const ENTITY = {
  person: shared({ system: ENTITY_TYPE, code: '1', display: 'Person' }),
  systemObject: shared({ system: ENTITY_TYPE, code: '2', display: 'System Object' }),
  other: shared({ system: ENTITY_TYPE, code: '4', display: 'Other' }),
  transaction: shared({ system: BALP_ENTITY_TYPE, code: 'XrequestId', display: 'X-Request-Id' }),
};
const ROLE = {
  patient: shared({ system: OBJECT_ROLE, code: '1', display: 'Patient' }),
  domainResource: shared({ system: OBJECT_ROLE, code: '4', display: 'Domain Resource' }),
  securityResource: shared({ system: OBJECT_ROLE, code: '13', display: 'Security Resource' }),
  job: shared({ system: OBJECT_ROLE, code: '20', display: 'Job' }),
};
/** nats-server, the application that refused the client (DCM Application role). */
const NATS_SERVER_AGENT: AuditEventAgent = shared({
  type: { coding: [AGENT.application] },
  who: { identifier: { system: SYSTEM.component, value: 'nats-server' }, display: 'nats-server' },
  requestor: false,
});
const SOURCE_TYPES: Coding[] = shared([{ system: SOURCE_TYPE, code: '4', display: 'Application Server' }]);
const ROLE_CONCEPTS = new Map<Coding, { coding: Coding[] }>();
const PURPOSES = new Map<string, { coding: Coding[] }[]>();
const PROFILE_DETAILS = new Map<
  string,
  { readonly elements: readonly string[]; readonly detail: NonNullable<AuditEventEntity['detail']> }
>();
const SOURCES = new WeakMap<EventContext, AuditEvent['source']>();

function roleConcept(role: Coding): { coding: Coding[] } {
  let cc = ROLE_CONCEPTS.get(role);
  if (cc === undefined) {
    cc = shared({ coding: [role] });
    ROLE_CONCEPTS.set(role, cc);
  }
  return cc;
}

/** `[{ coding: [PurposeOfUse code] }]`, shared per code. */
function purposes(code: string): { coding: Coding[] }[] {
  let list = PURPOSES.get(code);
  if (list === undefined) {
    list = shared([{ coding: [{ system: PURPOSE_OF_USE, code }] }]);
    PURPOSES.set(code, list);
  }
  return list;
}

/** The profile and element-path details of a delivery, shared per profile. */
function profileDetail(profileUrl: string, elements: readonly string[]): NonNullable<AuditEventEntity['detail']> {
  const hit = PROFILE_DETAILS.get(profileUrl);
  if (hit !== undefined && hit.elements === elements) return hit.detail;
  const detail = shared([
    { type: 'profile', valueString: profileUrl },
    { type: 'elements', valueString: elements.join(' ') },
  ]);
  PROFILE_DETAILS.set(profileUrl, { elements, detail });
  return detail;
}

/** source.observer: the recording process by its chain (instance id); the same object is its agent's `who`. */
function sourceOf(ctx: EventContext): AuditEvent['source'] {
  let source = SOURCES.get(ctx);
  if (source === undefined) {
    source = shared({
      observer: {
        identifier: { system: SYSTEM.instance, value: ctx.instanceId },
        display: `${RECORDER_DISPLAY[ctx.recorder ?? 'broker']} ${ctx.instanceId}`,
      },
      type: SOURCE_TYPES,
    });
    SOURCES.set(ctx, source);
  }
  return source;
}

export function buildAuditEvent(fact: AuditFact, ctx: EventContext): AuditEvent {
  return buildAuditEventAs(fact, ctx, ctx.newId(), new Date(ctx.now()).toISOString());
}

/**
 * The same with the event's `id` and `recorded` given: event-json.ts builds its templates through this (with
 * placeholders in those two places), so the builder stays the one description of each event's shape.
 */
export function buildAuditEventAs(fact: AuditFact, ctx: EventContext, id: string, recorded: string): AuditEvent {
  const base = (
    type: Coding,
    subtype: Coding,
    action: AuditEvent['action'],
    outcome: Outcome,
    agent: AuditEventAgent[],
    entity: AuditEventEntity[] = [],
    outcomeDesc?: string,
    profile?: string,
  ): AuditEvent => ({
    resourceType: 'AuditEvent',
    id,
    ...(profile === undefined ? {} : { meta: metaOf(profile) }),
    type,
    subtype: [subtype],
    ...(action === undefined ? {} : { action }),
    recorded,
    outcome,
    ...(outcomeDesc === undefined ? {} : { outcomeDesc }),
    agent,
    source: sourceOf(ctx),
    ...(entity.length === 0 ? {} : { entity }),
  });
  // The recording process (broker, gateway or command): its `who` is source.observer (BALP val-audit-source).
  const self = (role: Coding, requestor: boolean): AuditEventAgent => ({
    type: roleConcept(role),
    who: (sourceOf(ctx) as AuditEvent['source']).observer,
    requestor,
    ...(ctx.host === undefined ? {} : { network: networkOf(ctx.host) }),
  });
  const broker = self;
  switch (fact.kind) {
    case 'accepted':
      return base(
        TYPE.rest,
        SUBTYPE.create,
        'C',
        OUTCOME.success,
        [
          agent(
            fact.sender,
            AGENT.source,
            true,
            channel(() => subjects.ingest(fact.sender.service, fact.subject.resourceType)),
          ),
          broker(AGENT.destination, false),
        ],
        [
          ...subjectEntities(fact.subject),
          detailEntity('ingest-seq', String(fact.ingestSeq)),
          // Key use (which key versions touched this message), for key-compromise investigations: ids only.
          ...(fact.keys === undefined
            ? []
            : [
                keyEntity([
                  ['verified', fact.keys.verified],
                  ['unwrapped', fact.keys.unwrapped],
                ]),
              ]),
        ],
        undefined,
        // BALP Create (outcome fixed to success); PatientCreate when the resource is about exactly one patient.
        patientCount(fact.subject) === 1 ? BALP_PROFILE.patientCreate : BALP_PROFILE.create,
      );
    case 'rejected':
      return base(
        TYPE.rest,
        SUBTYPE.create,
        'C',
        fact.code === 'E_INTERNAL' ? OUTCOME.serious : OUTCOME.minor,
        [
          ...(fact.sender === undefined ? [] : [agent(fact.sender, AGENT.source, true)]),
          broker(AGENT.destination, false),
        ],
        [
          ...(fact.messageId === undefined ? [] : [transactionEntity(fact.messageId)]),
          ...(fact.resourceType === undefined ? [] : [resourceEntity({ resourceType: fact.resourceType })]),
          detailEntity('ingest-seq', String(fact.ingestSeq)),
          ...(fact.count === undefined ? [] : [detailEntity('refused-count', String(fact.count))]),
        ],
        fact.count === undefined ? describe(fact.code, fact.path) : describeSummary(fact.code, fact.count, fact.codes),
      );
    case 'delivered':
    case 'withheld': {
      const purpose: string | undefined = fact.purpose;
      const event = base(
        TYPE.export,
        SUBTYPE.disclose,
        'R',
        fact.kind === 'delivered' ? OUTCOME.success : OUTCOME.minor,
        [
          broker(AGENT.source, false),
          {
            ...agent(
              fact.recipient,
              AGENT.destination,
              true,
              channel(() => subjects.deliver(fact.recipient.service, fact.subject.resourceType)),
            ),
            ...(purpose === undefined ? {} : { purposeOfUse: purposes(purpose) }),
          },
          agent(fact.sender, AGENT.application, false),
        ],
        fact.kind === 'delivered'
          ? [
              ...subjectEntities(fact.subject, profileDetail(fact.profileUrl, fact.elements)),
              transactionEntity(fact.deliveryId, 'delivery'),
              // Key release: the data key of this copy was wrapped to the recipient under this KEK.
              ...(fact.keys === undefined
                ? []
                : [
                    keyEntity([
                      ['released', fact.keys.released],
                      ['signed', fact.keys.signed],
                    ]),
                  ]),
            ]
          : [...subjectEntities(fact.subject), ...(fact.consent === undefined ? [] : [consentEntity(fact.consent)])],
        fact.kind === 'withheld' ? describe(fact.code, fact.path) : undefined,
        // A copy that left, about one patient: BALP Privacy Disclosure at the source. A withheld copy did not leave.
        fact.kind === 'delivered' && patientCount(fact.subject) === 1 ? BALP_PROFILE.disclosureSource : undefined,
      );
      return purpose === undefined ? event : { ...event, purposeOfEvent: purposes(purpose) };
    }
    case 'quarantined':
      return base(
        TYPE.rest,
        SUBTYPE.create,
        'C',
        OUTCOME.success,
        [
          broker(AGENT.source, true),
          ...(fact.sender === undefined ? [] : [agent(fact.sender, AGENT.application, false)]),
        ],
        [
          {
            what: { identifier: { system: SYSTEM.quarantineRecord, value: fact.recordId } },
            type: ENTITY.systemObject,
            detail: [{ type: 'code', valueString: fact.code }],
          },
          ...(fact.messageId === undefined ? [] : [transactionEntity(fact.messageId)]),
          detailEntity('ingest-seq', String(fact.ingestSeq)),
        ],
      );
    case 'access': {
      // Right of access (45 CFR 164.524): the broker acts on the patient's request (v3 PurposeOfUse PATRQT) —
      // creating it, asking each holding service (destination), recording its answer or miss, extending it.
      const ok = fact.step === 'created' || fact.step === 'answered' || fact.step === 'extended';
      const action: AuditEvent['action'] = fact.step === 'created' ? 'C' : fact.step === 'extended' ? 'U' : 'R';
      const event = base(
        TYPE.patientRecord,
        { system: SYSTEM.accessStep, code: fact.step },
        action,
        ok ? OUTCOME.success : OUTCOME.minor,
        // A request a service filed (SDK): that service is the requestor (source); otherwise the broker acts for the operator.
        [
          ...(fact.requester === undefined
            ? []
            : [
                agent(
                  { service: fact.requester },
                  AGENT.source,
                  true,
                  channel(() => subjects.accessRequest(fact.requester as string)),
                ),
              ]),
          broker(AGENT.application, fact.requester === undefined),
          ...fact.services.map((s) =>
            agent(
              { service: s },
              AGENT.destination,
              false,
              channel(() => subjects.access(s)),
            ),
          ),
        ],
        [
          patientEntity(fact.patientPseudonym),
          {
            what: { identifier: { system: SYSTEM.accessRequest, value: fact.requestId } },
            type: ENTITY.systemObject,
            role: ROLE.job,
            ...(fact.resources === undefined && fact.sha256 === undefined
              ? {}
              : {
                  detail: [
                    ...(fact.resources === undefined
                      ? []
                      : [{ type: 'resources', valueString: String(fact.resources) }]),
                    ...(fact.sha256 === undefined ? [] : [{ type: 'sha256', valueString: fact.sha256 }]),
                  ],
                }),
          },
        ],
        ok ? undefined : `access ${fact.step}${fact.detail === undefined ? '' : `: ${fact.detail}`}`,
      );
      return {
        ...event,
        purposeOfEvent: purposes('PATRQT'),
        ...(ok && fact.detail !== undefined ? { outcomeDesc: fact.detail } : {}),
      };
    }
    case 'access-refused':
      // A service's request the broker refused: the service (as the subject named it) is the requestor, the broker decided.
      return {
        ...base(
          TYPE.patientRecord,
          { system: SYSTEM.accessStep, code: 'refused' },
          fact.op === 'status' ? 'R' : 'C',
          OUTCOME.minor,
          [
            agent(
              { service: fact.requester },
              AGENT.source,
              true,
              channel(() => subjects.accessRequest(fact.requester)),
            ),
            broker(AGENT.destination, false),
          ],
          fact.messageId === undefined ? [] : [transactionEntity(fact.messageId)],
          `access refused: ${describe(fact.code, fact.path)}`,
        ),
        purposeOfEvent: purposes('PATRQT'),
      };
    case 'partner-token': {
      // SMART Backend Services token request (DCM User Authentication / Login): the partner is the requestor, the
      // gateway the authenticating application; the client and the token issued are security resources.
      const details: { type: string; valueString: string }[] = [
        ...(fact.scopes === undefined ? [] : [{ type: 'scope', valueString: fact.scopes.join(' ') }]),
        ...(fact.kid === undefined ? [] : [{ type: 'kid', valueString: fact.kid }]),
      ];
      const summary =
        fact.summary === undefined
          ? []
          : [
              {
                type: ENTITY.other,
                detail: [
                  { type: 'count', valueString: String(fact.summary.count) },
                  { type: 'first-seen', valueString: fact.summary.firstSeen },
                  { type: 'last-seen', valueString: fact.summary.lastSeen },
                ],
              },
            ];
      return base(
        TYPE.userAuthentication,
        SUBTYPE.login,
        'E',
        fact.granted ? OUTCOME.success : OUTCOME.minor,
        [clientAgent(fact.service, fact.address), self(AGENT.application, false)],
        [
          ...securityEntity(SYSTEM.oauthClient, fact.clientId, details),
          ...securityEntity(SYSTEM.accessToken, fact.tokenId),
          ...summary,
        ],
        fact.granted
          ? undefined
          : fact.summary === undefined
            ? describe(fact.code ?? 'E_PARTNER_AUTH', fact.path)
            : `${fact.code ?? 'E_RATE_LIMITED'}: ${fact.summary.count} more token request${fact.summary.count === 1 ? '' : 's'} refused`,
      );
    }
    case 'partner-request': {
      // BALP RESTful interaction by a partner through the gateway: the partner is the requestor, the gateway the
      // application that answered; the OAuth client, the access token, each broker message id and the subscription
      // deleted are entities.
      const ok = fact.status < 400;
      return base(
        TYPE.rest,
        fact.interaction === 'create'
          ? SUBTYPE.create
          : fact.interaction === 'process-message'
            ? SUBTYPE.operation
            : SUBTYPE[fact.interaction],
        fact.interaction === 'process-message' ? 'E' : fact.interaction === 'delete' ? 'D' : 'C',
        ok ? OUTCOME.success : fact.status >= 500 ? OUTCOME.serious : OUTCOME.minor,
        [clientAgent(fact.service, fact.address), self(AGENT.application, false)],
        [
          // The HTTP status is a detail of the client, or of its own entity when the request named none.
          ...(fact.clientId === undefined
            ? [detailEntity('http-status', String(fact.status))]
            : securityEntity(SYSTEM.oauthClient, fact.clientId, [
                { type: 'http-status', valueString: String(fact.status) },
                ...(fact.replayed === true ? [{ type: 'replayed', valueString: 'true' }] : []),
              ])),
          ...securityEntity(SYSTEM.accessToken, fact.tokenId),
          ...fact.messageIds.map((id) => transactionEntity(id)),
          ...(fact.subscription === undefined
            ? []
            : [
                {
                  what: { identifier: { system: SYSTEM.subscription, value: fact.subscription } },
                  type: ENTITY.systemObject,
                  role: ROLE.domainResource,
                  ...(fact.handshake === undefined
                    ? {}
                    : { detail: [{ type: 'handshake-status', valueString: String(fact.handshake) }] }),
                },
              ]),
        ],
        fact.code === undefined ? undefined : describe(fact.code, fact.path),
      );
    }
    case 'partner-notification':
      // BALP Privacy Disclosure at the source (DCM 110106 Export, lifecycle disclose): the gateway passed the broker's
      // deliveries to the partner, pushed (the gateway acts) or read by the partner with $events or GET (it asks).
      return base(
        TYPE.export,
        SUBTYPE.disclose,
        fact.operation === 'notify' ? 'E' : 'R',
        OUTCOME.success,
        [
          self(AGENT.source, fact.operation === 'notify'),
          agent({ service: fact.service }, AGENT.destination, fact.operation !== 'notify'),
        ],
        [
          {
            what: { identifier: { system: SYSTEM.subscription, value: fact.subscription } },
            type: ENTITY.systemObject,
            role: ROLE.domainResource,
            detail: [
              { type: 'event-numbers', valueString: fact.events.join(' ') },
              { type: 'operation', valueString: fact.operation },
              ...(fact.profileUrl === undefined ? [] : [{ type: 'profile', valueString: fact.profileUrl }]),
            ],
          },
          ...fact.deliveryIds.map((id) => transactionEntity(id, 'delivery')),
        ],
      );
    case 'broker-start':
    case 'broker-stop':
      return base(
        TYPE.application,
        fact.kind === 'broker-start' ? SUBTYPE.applicationStart : SUBTYPE.applicationStop,
        'E',
        OUTCOME.success,
        [broker(AGENT.application, true)],
      );
    case 'catalog-loaded':
      return base(
        TYPE.securityAlert,
        SUBTYPE.securityConfiguration,
        'E',
        OUTCOME.success,
        [broker(AGENT.application, true)],
        [
          {
            what: {
              identifier: { system: SYSTEM.catalog, value: fact.hash },
              display: 'catalog (subjects/, fhir-profiles/)',
            },
            type: ENTITY.systemObject,
            detail: [
              { type: 'services', valueString: String(fact.services) },
              { type: 'types', valueString: String(fact.types) },
            ],
          },
        ],
      );
    case 'security-incident': {
      const violation = fact.incident === 'publish-violation' || fact.incident === 'subscription-violation';
      const client = clientAgent(
        fact.identity,
        fact.address,
        fact.manyClients === true ? 'many clients' : 'unauthenticated client',
      );
      const operation = fact.incident === 'publish-violation' ? 'publish' : 'subscribe';
      const details: { type: string; valueString: string }[] = [
        { type: 'count', valueString: String(fact.count) },
        { type: 'first-seen', valueString: fact.firstSeen },
        { type: 'last-seen', valueString: fact.lastSeen },
        ...(fact.moreSubjects === undefined ? [] : [{ type: 'more-subjects', valueString: String(fact.moreSubjects) }]),
        ...(fact.refusals ?? []).map((r) => ({ type: 'tls-refusal', valueString: r })),
        ...(fact.unknownUser === true ? [{ type: 'user', valueString: 'not a phi-broker identity' }] : []),
        ...(fact.manyClients === true ? [{ type: 'clients', valueString: 'many, counted together' }] : []),
      ];
      const event = base(
        TYPE.securityAlert,
        violation ? SUBTYPE.restrictedFunction : SUBTYPE.nodeAuthentication,
        'E',
        OUTCOME.minor,
        [client, NATS_SERVER_AGENT, broker(AGENT.application, false)],
        [
          ...(fact.subjects ?? []).map((subject): AuditEventEntity => ({
            what: { display: subject },
            type: ENTITY.systemObject,
            role: ROLE.securityResource,
            name: subject,
            detail: [{ type: 'operation', valueString: operation }],
          })),
          { type: ENTITY.other, detail: details },
        ],
        `${fact.incident}: ${fact.count} refused by nats-server`,
      );
      return {
        ...event,
        subtype: [...(event.subtype ?? []), { system: SYSTEM.securityIncident, code: fact.incident }],
      };
    }
    case 'operator-action':
      return operatorActionEvent(fact, base, self);
    case 'alert':
      return base(
        TYPE.securityAlert,
        { system: SYSTEM.alertRule, code: fact.rule },
        'E',
        OUTCOME.minor,
        [
          broker(AGENT.application, false),
          ...(fact.service === undefined ? [] : [agent({ service: fact.service }, AGENT.source, true)]),
        ],
        [detailEntity('alert', fact.detail)],
        `alert ${fact.rule}`,
      );
  }
}

/**
 * A service as an agent. `channel`: the NATS subject it acted through, its network access point (`nats:<subject>`,
 * network type 5 URI) when the transport did not tell the broker its address.
 */
function agent(actor: AuditActor, role: Coding, requestor: boolean, channel?: string): AuditEventAgent {
  const network =
    actor.address !== undefined ? networkOf(actor.address) : channel === undefined ? undefined : natsNetwork(channel);
  return {
    type: roleConcept(role),
    who: { identifier: { system: SYSTEM.service, value: actor.service }, display: actor.service },
    requestor,
    ...(network === undefined ? {} : { network }),
  };
}

/** The client a request came from: its catalog service once identified, else `display` at its network address. */
function clientAgent(
  service: string | undefined,
  address: string,
  display = 'unauthenticated client',
): AuditEventAgent {
  if (service !== undefined) return agent({ service, address }, AGENT.source, true);
  return {
    type: roleConcept(AGENT.source),
    who: { display },
    requestor: true,
    network: { address, type: isIpAddress(address) ? '2' : '1' },
  };
}

/** An OAuth client or access token a request named, as a security resource; nothing when it named none. */
function securityEntity(
  system: string,
  value: string | undefined,
  detail: readonly { type: string; valueString: string }[] = [],
): AuditEventEntity[] {
  if (value === undefined) return [];
  return [
    {
      what: { identifier: { system, value } },
      type: ENTITY.systemObject,
      role: ROLE.securityResource,
      ...(detail.length === 0 ? {} : { detail: [...detail] }),
    },
  ];
}

/** The subject a service acted through; undefined for a name outside the subject grammar (then no network). */
function channel(subject: () => string): string | undefined {
  try {
    return subject();
  } catch {
    return undefined;
  }
}

/** R4 AuditEvent.agent.network: type 1 machine name, 2 IP address. */
function networkOf(address: string): NonNullable<AuditEventAgent['network']> {
  return { address, type: isIpAddress(address) ? '2' : '1' };
}

const NATS_NETWORKS = new Map<string, NonNullable<AuditEventAgent['network']>>();
function natsNetwork(subject: string): NonNullable<AuditEventAgent['network']> {
  let n = NATS_NETWORKS.get(subject);
  if (n === undefined) {
    n = shared({ address: `nats:${subject}`, type: '5' as const });
    if (NATS_NETWORKS.size < 16 * 1024) NATS_NETWORKS.set(subject, n);
  }
  return n;
}

const METAS = new Map<string, NonNullable<AuditEvent['meta']>>();
/** `meta.profile`: the BALP profile the event claims (conformance is tested: test/helpers/balp.ts). */
function metaOf(profile: string): NonNullable<AuditEvent['meta']> {
  let m = METAS.get(profile);
  if (m === undefined) {
    m = shared({ profile: [profile] });
    METAS.set(profile, m);
  }
  return m;
}

/** The patient entity: BALP `entity[patient].what only Reference(Patient)`, a logical reference by the pseudonym. */
function patientEntity(pseudonym: string): AuditEventEntity {
  return shared({
    what: { type: 'Patient', identifier: { system: SYSTEM.patientPseudonym, value: pseudonym } },
    type: ENTITY.person,
    role: ROLE.patient,
  });
}

function patientCount(subject: AuditSubject): number {
  return new Set([
    ...(subject.patientPseudonym === undefined ? [] : [subject.patientPseudonym]),
    ...(subject.patientPseudonyms ?? []),
  ]).size;
}

function isIpAddress(address: string): boolean {
  return /^[0-9.]+$/.test(address) || address.includes(':');
}

function describe(code: string, path: string | undefined): string {
  return path === undefined ? code : `${code} at ${path}`;
}

/** A throttled window's summary: `E_SENDER_THROTTLED: 37 rejections refused (E_NOT_FHIR × 30, E_VALUE_INVALID × 7)`. */
function describeSummary(code: string, count: number, codes: Readonly<Record<string, number>> = {}): string {
  const by = Object.entries(codes)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([c, n]) => `${c} × ${n}`)
    .join(', ');
  return `${code}: ${count} rejection${count === 1 ? '' : 's'} refused${by === '' ? '' : ` (${by})`}`;
}

interface SubjectParts {
  readonly patients: readonly AuditEventEntity[];
  readonly resource: AuditEventEntity;
  readonly transaction: AuditEventEntity;
}

/** The facts of one message share their subject object: its entities are built once. */
const SUBJECT_PARTS = new WeakMap<AuditSubject, SubjectParts>();

/**
 * The patient (as pseudonym) — or for a Bundle that travels whole, each entry's patient, once each — and the
 * resource (as the pseudonym of `<Type>/<id>` when the subject has one).
 */
function subjectEntities(subject: AuditSubject, detail: AuditEventEntity['detail'] = []): AuditEventEntity[] {
  let parts = SUBJECT_PARTS.get(subject);
  if (parts === undefined) {
    parts = {
      patients: [
        ...new Set([
          ...(subject.patientPseudonym === undefined ? [] : [subject.patientPseudonym]),
          ...(subject.patientPseudonyms ?? []),
        ]),
      ].map(patientEntity),
      resource: shared(resourceEntity(subject)),
      transaction: shared(transactionEntity(subject.messageId)),
    };
    SUBJECT_PARTS.set(subject, parts);
  }
  const resource = detail !== undefined && detail.length > 0 ? { ...parts.resource, detail } : parts.resource;
  return parts.patients.length === 0 ? [resource, parts.transaction] : [...parts.patients, resource, parts.transaction];
}

/**
 * The resource by type and the keyed pseudonym of `<type>/<id>`: a logical id can carry an identifier (an MRN,
 * an accession number), so it is never written in clear; an auditor holding the id finds it by the same HMAC.
 */
function resourceEntity(subject: Pick<AuditSubject, 'resourceType' | 'resourcePseudonym'>): AuditEventEntity {
  const pseudonym = subject.resourcePseudonym;
  return {
    what:
      pseudonym === undefined
        ? { type: subject.resourceType }
        : { identifier: { system: SYSTEM.resourcePseudonym, value: pseudonym }, type: subject.resourceType },
    type: ENTITY.systemObject,
    role: ROLE.domainResource,
  };
}

/** The patient restriction (FHIR Consent, 45 CFR 164.522) that decided: object role 13 Security Resource. */
function consentEntity(id: string): AuditEventEntity {
  return {
    what: { identifier: { system: SYSTEM.consent, value: id }, type: 'Consent' },
    type: ENTITY.systemObject,
    role: ROLE.securityResource,
  };
}

/** BALP's transaction entity: the message id (the request id of a message flow). */
function transactionEntity(messageId: string, name = 'message'): AuditEventEntity {
  return {
    what: { identifier: { system: SYSTEM.messageId, value: messageId } },
    type: ENTITY.transaction,
    name,
  };
}

/** The key ids a step used (`<service>:<use>:<version>`, KEK `kidA~kidB`; src/crypto/): never key material. */
function keyEntity(uses: readonly (readonly [string, string])[]): AuditEventEntity {
  return {
    what: { display: 'keys' },
    type: ENTITY.other,
    detail: uses.map(([type, kid]) => ({ type: `key-${type}`, valueString: kid })),
  };
}

function detailEntity(type: string, value: string): AuditEventEntity {
  return { type: ENTITY.other, detail: [{ type, valueString: value }] };
}

type Base = (
  type: Coding,
  subtype: Coding,
  action: AuditEvent['action'],
  outcome: Outcome,
  agent: AuditEventAgent[],
  entity?: AuditEventEntity[],
  outcomeDesc?: string,
  profile?: string,
) => AuditEvent;

/**
 * How each operator action is recorded: its event type and RESTful or ISO 21089 subtype, its action code, the BALP
 * profile it claims (when it meets it: a FHIR resource created, updated or read at the NATS server), and whether the
 * operator authored something (AUT) or received what was shown (IRCP).
 */
const OPERATOR_EVENTS: Readonly<
  Record<
    OperatorActionFact['action'],
    {
      readonly type: Coding;
      readonly subtype?: Coding;
      readonly action: NonNullable<AuditEvent['action']>;
      readonly profile?: 'create' | 'update' | 'read';
      readonly author: boolean;
    }
  >
> = {
  'consent-add': { type: TYPE.rest, subtype: SUBTYPE.create, action: 'C', profile: 'create', author: true },
  'consent-revoke': { type: TYPE.rest, subtype: SUBTYPE.update, action: 'U', profile: 'update', author: true },
  'access-request': { type: TYPE.patientRecord, action: 'C', author: true },
  'access-extend': { type: TYPE.patientRecord, action: 'U', author: true },
  // The assembled record handed to the individual (45 CFR 164.524): PHI leaves, so ISO 21089 disclose.
  'access-export': { type: TYPE.export, subtype: SUBTYPE.disclose, action: 'R', author: false },
  'quarantine-decrypt': { type: TYPE.rest, subtype: SUBTYPE.read, action: 'R', profile: 'read', author: false },
  'registry-show': { type: TYPE.query, action: 'E', author: false },
  disclosures: { type: TYPE.query, action: 'E', author: false },
  'audit-query': { type: TYPE.query, action: 'E', author: false },
  'audit-export': { type: TYPE.export, action: 'R', author: false },
};

const OBJECT_SYSTEM = {
  consent: SYSTEM.consent,
  'access-request': SYSTEM.accessRequest,
  'quarantine-record': SYSTEM.quarantineRecord,
} as const;

/** An operator's compliance action (facts.ts OperatorActionFact), recorded by the command: docs/audit.md. */
function operatorActionEvent(
  fact: OperatorActionFact,
  base: Base,
  self: (role: Coding, requestor: boolean) => AuditEventAgent,
): AuditEvent {
  const shape = OPERATOR_EVENTS[fact.action];
  const reads = shape.action === 'R' && shape.profile === 'read';
  // BALP RESTful patterns: the client (this command) and the server (nats-server, where the KV bucket or stream
  // lives), both with their network address; for a read the roles turn (the server is the source of the data).
  const client = self(reads ? AGENT.destination : AGENT.source, false);
  const server: AuditEventAgent = {
    type: roleConcept(reads ? AGENT.source : AGENT.destination),
    who: { identifier: { system: SYSTEM.component, value: 'nats-server' }, display: 'nats-server' },
    requestor: false,
    network: networkOf(fact.server),
  };
  // BALP agent[user]: a person, never a network device.
  const user: AuditEventAgent = {
    type: roleConcept(shape.author ? AGENT.author : AGENT.informationRecipient),
    who: { identifier: { system: SYSTEM.operator, value: fact.operator }, display: fact.operator },
    name: fact.operator,
    requestor: true,
    ...(fact.identity === undefined ? {} : { altId: fact.identity }),
  };
  const object: AuditEventEntity[] =
    fact.object === undefined
      ? []
      : [
          {
            what: {
              identifier: { system: OBJECT_SYSTEM[fact.object.kind], value: fact.object.id },
              ...(fact.object.kind === 'consent' ? { type: 'Consent' } : {}),
            },
            type: ENTITY.systemObject,
            role: fact.object.kind === 'access-request' ? ROLE.job : ROLE.domainResource,
          },
        ];
  const details = fact.details ?? [];
  const entity: AuditEventEntity[] = [
    ...(fact.patientPseudonym === undefined ? [] : [patientEntity(fact.patientPseudonym)]),
    ...object,
    ...(details.length === 0
      ? []
      : [{ type: ENTITY.other, detail: details.map(([type, valueString]) => ({ type, valueString })) }]),
  ];
  const profile =
    shape.profile === undefined || object.length !== 1
      ? undefined
      : shape.profile === 'read'
        ? BALP_PROFILE.read
        : fact.patientPseudonym === undefined
          ? BALP_PROFILE[shape.profile]
          : BALP_PROFILE[shape.profile === 'create' ? 'patientCreate' : 'patientUpdate'];
  const event = base(
    shape.type,
    shape.subtype ?? { system: SYSTEM.operatorAction, code: fact.action },
    shape.action,
    OUTCOME.success,
    [user, client, server],
    entity,
    undefined,
    profile,
  );
  return shape.subtype === undefined
    ? event
    : { ...event, subtype: [...(event.subtype ?? []), { system: SYSTEM.operatorAction, code: fact.action }] };
}
