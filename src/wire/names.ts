// Every NATS subject, stream, consumer and KV bucket name phi-broker uses, in one place (DESIGN.md:
// "nothing else spells a subject string"). Subjects carry only service ids and FHIR resource type names —
// never a patient reference, an identifier or any other value (PHI must not appear in subjects).
import { BROKER_ID, INSTANCE_ID_PATTERN, RAW_TYPE, RESOURCE_TYPE_NAME_PATTERN, SERVICE_ID_PATTERN } from './ids.js';

export const STREAMS = {
  ingest: 'PHI_INGEST',
  deliver: 'PHI_DELIVER',
  quarantine: 'PHI_QUARANTINE',
  receipts: 'PHI_RECEIPTS',
  /** Accounting of disclosures (45 CFR 164.528): one record per delivery to an accounted recipient; deny delete, deny purge. */
  disclosures: 'PHI_DISCLOSURES',
  /** The audit trail: write once (deny delete, deny purge), one hash chain per broker instance (docs/audit.md). */
  audit: 'PHI_AUDIT',
  /**
   * Signed heads of the audit chains, kept apart from PHI_AUDIT (deny delete, deny purge): a truncated chain is
   * shorter than its last witnessed head (docs/audit.md, "Witnessed heads").
   */
  auditWitness: 'PHI_AUDIT_WITNESS',
} as const;

export const KV_BUCKETS = {
  /** Message ids the broker has accepted, for replay detection beyond JetStream's duplicate window. */
  seen: 'phi_seen',
  /** Patient restrictions (45 CFR 164.522) as sealed FHIR Consent resources, keyed `<patient pseudonym>.<consent id>`. */
  consent: 'phi_consent',
  /** Patient-to-service registry: keyed patient pseudonym → services holding data (src/registry/). */
  registry: 'phi_registry',
  /** Right-of-access requests and their state (src/access/); the patient reference only sealed. */
  access: 'phi_access',
  /**
   * SMART Backend Services client-assertion ids the partner gateways have accepted, keyed `<client id>.<SHA-256 of
   * the jti>`, with a TTL past any assertion's exp plus the allowed skew: a jti is used once across all gateways.
   */
  gatewayJti: 'phi_gateway_jti',
  /**
   * Inbound partner requests the gateways have answered, keyed `<client id>.<SHA-256 of the idempotency key>`, holding
   * the answer (status, Location, OperationOutcome or response Bundle: no resource content), so a retry on any gateway
   * gets the same answer (src/gateway/idempotency.ts).
   */
  gatewayRequests: 'phi_gateway_requests',
  /**
   * The partner gateways' shared rate-limit counters (src/gateway/rate-limit.ts), keyed `client.<client id>.<SHA-256
   * of the address>` or `address.<SHA-256 of the address>`: the current window's start and count, no request content.
   */
  gatewayRate: 'phi_gateway_rate',
  /**
   * Partner R4 Subscriptions (src/gateway/subscriptions/), keyed `sub.<id>` (the resource and its event counter)
   * and `lease.<partner>.<Type>` (which gateway delivers that topic's notifications). Never expires.
   */
  gatewaySubscriptions: 'phi_gateway_subscriptions',
  /**
   * Each subscription's notification events, keyed `<subscription id>.<event number>`: the sealed, broker-signed
   * delivery (never plaintext) and its PHI_DELIVER sequence, kept as long as PHI_DELIVER keeps deliveries.
   */
  gatewayEvents: 'phi_gateway_events',
  /** The key directory (docs/keys.md): per party (service, broker, partner), its public JWKS with key status, as a JWS signed by the operator root key. */
  keys: 'phi_keys',
} as const;

/** JetStream Object Store buckets (NATS ADR-20). */
export const OBJECT_STORES = {
  /** Each service's answer to a right-of-access request, sealed under the broker's access key (src/access/). */
  accessAnswers: 'phi_access_answers',
} as const;

/**
 * Reply-subject prefix of one NATS identity (a service id, or the broker's). Each identity may subscribe only
 * under its own prefix, so no client can read replies meant for another (JetStream API answers, pulled messages).
 * nats.js takes it as the `inboxPrefix` connection option. Service ids start with a letter, so they never
 * collide with the default `_INBOX.<NUID>` (upper case) or with `_INBOX._admin` / `_INBOX._operator` / `_INBOX._auditor` / `_INBOX._gateway`.
 */
export function inboxPrefix(identity: string): string {
  if (
    identity !== '_admin' &&
    identity !== '_operator' &&
    identity !== '_auditor' &&
    identity !== '_gateway' &&
    !SERVICE_ID_PATTERN.test(identity)
  )
    throw new TypeError(`not an identity: ${JSON.stringify(identity)}`);
  return `_INBOX.${identity}`;
}

/** A reply subject's last token: 32 random hex digits, one per request (src/nats/request.ts). */
const REPLY_NONCE = /^[0-9a-f]{32}$/;

function assertNonce(nonce: string): void {
  if (!REPLY_NONCE.test(nonce)) throw new TypeError('not a reply nonce');
}

/**
 * Reply subjects that take the place of NATS `allow_responses` (docs/security-model.md "Replies"): each names who
 * may answer there, so a permission can allow exactly that and no identity's reply tracking grows with traffic.
 */
export const replies = {
  /** A service's answer to the broker's access request or part request: under the broker's inbox. */
  accessAnswer: (service: string, nonce: string): string => {
    assertService(service);
    assertNonce(nonce);
    return `${inboxPrefix(BROKER_ID)}.answer.${service}.${nonce}`;
  },
  /** Where one service may answer: what it may publish to. */
  accessAnswers: (service: string): string => {
    assertService(service);
    return `${inboxPrefix(BROKER_ID)}.answer.${service}.*`;
  },
  /** The broker's answer to a request it received (an operator's access command, a service's access request). */
  desk: (inbox: string, nonce: string): string => {
    assertNonce(nonce);
    return `${inbox}.desk.${nonce}`;
  },
  /** Where the broker may answer one requester: under its inbox, never the rest of it (JetStream API replies). */
  desks: (inbox: string): string => `${inbox}.desk.*`,
} as const;

export const BROKER_CONSUMER = 'broker';

/** Queue group of the broker processes' control subjects: each control request is handled by one of them. */
export const BROKER_QUEUE = 'phi-broker';

/** Raw (raw-mode) envelopes carry this in place of a resource type. */
export { RAW_TYPE };
const RAW_TOKEN = '_raw';
/** Operator commands' audit chains: `phi.audit.cli.<id>`, a subject namespace of their own (src/nats/permissions.ts). */
const OPERATOR_CHAIN_PREFIX = 'cli.';
/** Partner gateways' audit chains: `phi.audit.gw.<id>`, a subject namespace of their own (src/nats/permissions.ts). */
const GATEWAY_CHAIN_PREFIX = 'gw.';

export const HEADERS = {
  /** JetStream de-duplication (NATS ADR-31): set to the message id. */
  msgId: 'Nats-Msg-Id',
  /** Ed25519 detached signature (base64url) over the exact message bytes (docs/wire-format.md). */
  signature: 'Phi-Sig',
  /** Quarantine records: the stable error code (never a value). */
  code: 'Phi-Code',
  /** Quarantine records: the record's facts as JSON (src/broker/quarantine.ts; never a value). */
  record: 'Phi-Record',
  /** Quarantine records and right-of-access answer parts: `i/n`, this message's place among the parts. */
  part: 'Phi-Part',
  /** A right-of-access answer sent in parts: on the manifest that replies to the question, the part count (src/access/protocol/parts.ts). */
  parts: 'Phi-Parts',
} as const;

function assertService(service: string): void {
  if (!SERVICE_ID_PATTERN.test(service)) throw new TypeError(`not a service id: ${JSON.stringify(service)}`);
}

/** A patient pseudonym token (src/registry/pseudonym.ts: 43 base64url characters), or `_unresolved`. */
export const UNRESOLVED_PATIENT = '_unresolved';
const PSEUDONYM_TOKEN = /^(?:[A-Za-z0-9_-]{43}|_unresolved)$/;

function assertPseudonym(token: string): void {
  if (!PSEUDONYM_TOKEN.test(token)) throw new TypeError('not a patient pseudonym token');
}

function typeToken(type: string): string {
  if (type === RAW_TYPE) return RAW_TOKEN;
  if (!RESOURCE_TYPE_NAME_PATTERN.test(type)) throw new TypeError(`not a resource type: ${JSON.stringify(type)}`);
  return type;
}

export const subjects = {
  ingestAll: 'phi.ingest.>',
  ingest: (service: string, type: string): string => {
    assertService(service);
    return `phi.ingest.${service}.${typeToken(type)}`;
  },
  deliverAll: 'phi.deliver.>',
  deliver: (service: string, type: string): string => {
    assertService(service);
    return `phi.deliver.${service}.${typeToken(type)}`;
  },
  deliverFilter: (service: string, type?: string): string => {
    assertService(service);
    return type === undefined ? `phi.deliver.${service}.>` : `phi.deliver.${service}.${typeToken(type)}`;
  },
  quarantineAll: 'phi.quarantine.>',
  quarantine: (service: string): string => `phi.quarantine.${SERVICE_ID_PATTERN.test(service) ? service : '_unknown'}`,
  /** Disclosure records: `phi.disclosure.<patient pseudonym>.<recipient>` (the broker's keyed pseudonym, never a raw id). */
  disclosuresAll: 'phi.disclosure.>',
  disclosure: (patient: string, recipient: string): string => {
    assertPseudonym(patient);
    assertService(recipient);
    return `phi.disclosure.${patient}.${recipient}`;
  },
  disclosuresOf: (patient: string): string => {
    assertPseudonym(patient);
    return `phi.disclosure.${patient}.>`;
  },
  /** Right of access: the broker asks one service for a patient's data (request/reply; only that service may subscribe). */
  access: (service: string): string => {
    assertService(service);
    return `phi.access.${service}`;
  },
  /**
   * Right of access: where the service that answered serves the parts of an answer larger than one message, by
   * request/reply (src/access/protocol/parts.ts); `token` is 32 random hex digits, one per answer (no PHI).
   */
  accessPart: (service: string, token: string): string => {
    assertService(service);
    if (!/^[0-9a-f]{32}$/.test(token)) throw new TypeError('not an answer parts token');
    return `phi.access.${service}.part.${token}`;
  },
  /** Every parts subject of one service: what it may subscribe to (src/nats/permissions.ts). */
  accessParts: (service: string): string => {
    assertService(service);
    return `phi.access.${service}.part.*`;
  },
  /** Right of access: operator commands to the broker processes (request/reply, queue group BROKER_QUEUE). */
  accessControl: 'phi.control.access',
  accessAll: 'phi.access.>',
  /**
   * Right of access from a service (the SDK's requestAccess / accessStatus): request/reply to the broker processes
   * (queue group BROKER_QUEUE) on `phi.request.access.<requesting service>`; only the catalog's access requesters
   * may publish there. The patient reference travels sealed in the body, never in the subject or a header.
   */
  accessRequest: (service: string): string => {
    assertService(service);
    return `phi.request.access.${service}`;
  },
  /** What the broker processes subscribe to: every service's access-request subject. */
  accessRequestAll: 'phi.request.access.*',
  /** Every subject under phi.request (denied to services that are not requesters, and to every subscriber). */
  requestAll: 'phi.request.>',
  receiptsAll: 'phi.receipt.>',
  receipt: (service: string): string => {
    assertService(service);
    return `phi.receipt.${service}`;
  },
  auditAll: 'phi.audit.>',
  /** One audit chain: a broker's instance id, `gw.<id>` for a gateway's, `cli.<id>` for an operator command's (assertChain). */
  audit: (chain: string): string => `phi.audit.${assertChain(chain)}`,
  /** The operator commands' own chains: all the audit stream the operator and auditor identities may append to. */
  operatorAuditAll: `phi.audit.${OPERATOR_CHAIN_PREFIX}*`,
  /** Witnessed heads of the audit chains (stream PHI_AUDIT_WITNESS); outside phi.audit.> so PHI_AUDIT never holds them. */
  witnessAll: 'phi.witness.audit.>',
  /** The witnessed heads of one audit chain. */
  witness: (chain: string): string => `phi.witness.audit.${assertChain(chain)}`,
  operatorWitnessAll: `phi.witness.audit.${OPERATOR_CHAIN_PREFIX}*`,
  /** The gateways' own chains: all the audit stream the gateway identity may append to. */
  gatewayAuditAll: `phi.audit.${GATEWAY_CHAIN_PREFIX}*`,
  gatewayWitnessAll: `phi.witness.audit.${GATEWAY_CHAIN_PREFIX}*`,
  alertAll: 'phi.alert.>',
  /** Core NATS (not stored): an alert rule fired (src/audit/alerts.ts). */
  alert: (rule: string): string => {
    if (!/^[a-z][a-z0-9-]{0,39}$/.test(rule)) throw new TypeError(`not an alert rule: ${JSON.stringify(rule)}`);
    return `phi.alert.${rule}`;
  },
} as const;

/** The chain name an operator command writes under: `cli.<instance id>` (subject `phi.audit.cli.<id>`). */
export function operatorChain(instanceId: string): string {
  return assertChain(`${OPERATOR_CHAIN_PREFIX}${instanceId}`);
}

/** The chain name a partner gateway writes under: `gw.<instance id>` (subject `phi.audit.gw.<id>`). */
export function gatewayChain(instanceId: string): string {
  return assertChain(`${GATEWAY_CHAIN_PREFIX}${instanceId}`);
}

/** Who writes and signs an audit chain, from its name: a broker, a partner gateway or an operator command. */
export type ChainWriter = 'broker' | 'gateway' | 'operator';

export function chainWriter(chain: string): ChainWriter {
  if (chain.startsWith(OPERATOR_CHAIN_PREFIX)) return 'operator';
  if (chain.startsWith(GATEWAY_CHAIN_PREFIX)) return 'gateway';
  return 'broker';
}

function assertChain(chain: string): string {
  const prefix = [OPERATOR_CHAIN_PREFIX, GATEWAY_CHAIN_PREFIX].find((p) => chain.startsWith(p)) ?? '';
  const id = chain.slice(prefix.length);
  if (!INSTANCE_ID_PATTERN.test(id)) throw new TypeError(`not an audit chain: ${JSON.stringify(chain)}`);
  return chain;
}

export interface IngestSubject {
  readonly service: string;
  readonly type: string;
}

/** Parses `phi.ingest.<service>.<Type>`; undefined when the subject is not of that shape. */
export function parseIngestSubject(subject: string): IngestSubject | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'phi' || parts[1] !== 'ingest') return undefined;
  const [, , service, token] = parts as [string, string, string, string];
  if (!SERVICE_ID_PATTERN.test(service)) return undefined;
  if (token === RAW_TOKEN) return { service, type: RAW_TYPE };
  return RESOURCE_TYPE_NAME_PATTERN.test(token) ? { service, type: token } : undefined;
}

/** The requesting service named by `phi.request.access.<service>`; undefined when the subject is not of that shape. */
export function parseAccessRequestSubject(subject: string): string | undefined {
  const parts = subject.split('.');
  if (parts.length !== 4 || parts[0] !== 'phi' || parts[1] !== 'request' || parts[2] !== 'access') return undefined;
  const service = parts[3] as string;
  return SERVICE_ID_PATTERN.test(service) ? service : undefined;
}

/** Durable consumer of a subscriber's deliveries (all types, or one). */
export function deliveryConsumer(service: string, type?: string): string {
  assertService(service);
  return type === undefined ? `deliver-${service}` : `deliver-${service}-${typeToken(type)}`;
}

/** Written where a subject named in a log line does not fit the grammar below: it may be anything a client sent. */
export const NOT_A_PHI_BROKER_SUBJECT = '(not a phi-broker subject)';

/** The closed sets a subject's tokens are checked against: the catalog's names and this deployment's instance ids. */
export interface SubjectVocabulary {
  readonly services: ReadonlySet<string>;
  readonly types: ReadonlySet<string>;
  readonly instances: ReadonlySet<string>;
  readonly alertRules: ReadonlySet<string>;
}

type TokenTest = (token: string) => boolean;

/** JetStream API verbs and object words (NATS ADR-1, `$JS.API.>`): a closed set, so no token carries free text. */
const JS_API_WORDS = new Set([
  'INFO',
  'STREAM',
  'CONSUMER',
  'CREATE',
  'UPDATE',
  'DELETE',
  'PURGE',
  'NAMES',
  'LIST',
  'MSG',
  'GET',
  'NEXT',
  'DURABLE',
  'SNAPSHOT',
  'RESTORE',
  'LEADER',
  'STEPDOWN',
  'PEER',
  'REMOVE',
  'DIRECT',
]);

/**
 * Whether a subject from a nats-server log line is one of ours with every variable token from `vocabulary` (or a
 * wildcard), so it holds no client-chosen value and may enter the audit trail (docs/audit.md, "Security incidents").
 */
export function subjectGrammar(vocabulary: SubjectVocabulary): (subject: string) => boolean {
  const lit =
    (word: string): TokenTest =>
    (t) =>
      t === word;
  const service: TokenTest = (t) => vocabulary.services.has(t);
  const type: TokenTest = (t) => vocabulary.types.has(t) || t === RAW_TOKEN;
  const instance: TokenTest = (t) => vocabulary.instances.has(t);
  const partToken: TokenTest = (t) => /^[0-9a-f]{32}$/.test(t);
  const wildcardOnly: TokenTest = () => false;
  const streamNames = new Set<string>([
    ...Object.values(STREAMS),
    ...Object.values(KV_BUCKETS).map((b) => `KV_${b}`),
    ...Object.values(OBJECT_STORES).map((b) => `OBJ_${b}`),
  ]);
  const jsToken: TokenTest = (t) =>
    JS_API_WORDS.has(t) || streamNames.has(t) || t === BROKER_CONSUMER || consumers.has(t);
  // Durable consumer names of the catalog's subscribers (deliveryConsumer), all types or one.
  const consumers = new Set<string>();
  for (const s of vocabulary.services) {
    consumers.add(deliveryConsumer(s));
    for (const ty of vocabulary.types) consumers.add(deliveryConsumer(s, ty));
  }
  const patterns: TokenTest[][] = [
    [lit('phi'), lit('ingest'), service, type],
    [lit('phi'), lit('deliver'), service, type],
    [lit('phi'), lit('quarantine'), service],
    [lit('phi'), lit('receipt'), service],
    [lit('phi'), lit('access'), service],
    [lit('phi'), lit('access'), service, lit('part'), partToken],
    [lit('phi'), lit('control'), lit('access')],
    [lit('phi'), lit('request'), lit('access'), service],
    [lit('phi'), lit('audit'), instance],
    [lit('phi'), lit('witness'), lit('audit'), instance],
    // Operator and gateway chains: their ids embed host names, so only the wildcard forms are named.
    [lit('phi'), lit('audit'), lit('cli'), wildcardOnly],
    [lit('phi'), lit('audit'), lit('gw'), wildcardOnly],
    [lit('phi'), lit('witness'), lit('audit'), lit('cli'), wildcardOnly],
    [lit('phi'), lit('witness'), lit('audit'), lit('gw'), wildcardOnly],
    [lit('phi'), lit('alert'), (t) => vocabulary.alertRules.has(t)],
  ];
  const js: TokenTest[] = [lit('$JS'), lit('API')];
  return (subject) => {
    const tokens = subject.split('.');
    if (tokens.some((t) => t.length === 0)) return false;
    const fits = (pattern: readonly TokenTest[]): boolean => {
      for (let i = 0; i < tokens.length; i++) {
        const t = tokens[i] as string;
        if (t === '>') return i === tokens.length - 1 && i <= pattern.length;
        const test = pattern[i];
        if (test === undefined) return false;
        if (t !== '*' && !test(t)) return false;
      }
      return tokens.length === pattern.length;
    };
    if (patterns.some(fits)) return true;
    // `$JS.API.` then up to five tokens from the closed JetStream vocabulary.
    return (
      tokens.length <= 7 && fits([...js, ...Array.from({ length: Math.max(0, tokens.length - 2) }, () => jsToken)])
    );
  };
}
