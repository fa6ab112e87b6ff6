// R4 topic-based Subscriptions as the HL7 Subscriptions R5 Backport IG (STU 1.1) profiles them: the topics the
// catalog gives each partner, the Subscription a partner may post (backport-subscription), and its stored form.
// Checks name the element path, never a value. Protocol: docs/partner-gateway.md "Subscriptions".
import type { Subscription } from 'fhir/r4.js';
import type { Catalog, ServiceDef } from '../../catalog/types.js';
import { BrokerError } from '../../wire/errors.js';

export const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/';
export const BACKPORT_SUBSCRIPTION = `${BACKPORT}backport-subscription`;
export const BACKPORT_STATUS = `${BACKPORT}backport-subscription-status-r4`;
export const BACKPORT_NOTIFICATION = `${BACKPORT}backport-subscription-notification-r4`;
export const PAYLOAD_CONTENT = `${BACKPORT}backport-payload-content`;
export const HEARTBEAT_PERIOD = `${BACKPORT}backport-heartbeat-period`;
export const TIMEOUT = `${BACKPORT}backport-timeout`;
export const TOPIC_CANONICAL = `${BACKPORT}capabilitystatement-subscriptiontopic-canonical`;
/** Canonical URL of the topic for one resource type (one topic per type a partner receives). */
export const TOPIC_BASE = 'https://phi-broker.dev/fhir/SubscriptionTopic/';

export type PayloadContent = 'empty' | 'id-only' | 'full-resource';
/** `id-only` names each copy by the id it carries (the partner's pseudonym where its profile withholds the id). */
export const SUPPORTED_CONTENT: readonly PayloadContent[] = ['empty', 'id-only', 'full-resource'];

/** How long the gateway waits for a rest-hook endpoint to answer, unless the subscription asks for less. */
export const DEFAULT_TIMEOUT_S = 30;
export const MAX_TIMEOUT_S = 60;
/** Bounds of `backport-heartbeat-period`, seconds; the lower one is a gateway option (GatewayOptions.heartbeatMinS). */
export const DEFAULT_HEARTBEAT_MIN_S = 10;
export const MAX_HEARTBEAT_S = 86_400;
/** Live subscriptions one partner may hold to one topic: each stores its own copy of every event. */
export const MAX_SUBSCRIPTIONS_PER_TOPIC = 10;

/** Topic canonical → the resource type it notifies, for the types `partner` receives. */
export function partnerTopics(catalog: Catalog, service: string): Map<string, string> {
  const topics = new Map<string, string>();
  for (const t of [...catalog.topics.values()].sort((a, b) => (a.resourceType < b.resourceType ? -1 : 1)))
    if (t.subscribers.some((s) => s.service === service)) topics.set(`${TOPIC_BASE}${t.resourceType}`, t.resourceType);
  return topics;
}

/** Every topic canonical any partner may subscribe to (for the CapabilityStatement). */
export function allPartnerTopics(catalog: Catalog): string[] {
  const all = new Set<string>();
  for (const s of catalog.services.values())
    if (s.partner !== undefined) for (const url of partnerTopics(catalog, s.id).keys()) all.add(url);
  return [...all].sort();
}

/** What the gateway keeps of a subscription (KV `sub.<id>`), besides the delivery counters. */
export interface SubscriptionRecord {
  readonly id: string;
  readonly partner: string;
  readonly topic: string;
  readonly resourceType: string;
  readonly endpoint: string;
  readonly content: PayloadContent;
  /** Header lines the partner asked to receive with each notification (channel.header). */
  readonly headers: readonly string[];
  readonly timeoutS: number;
  /** backport-heartbeat-period: seconds without a notification after which a `heartbeat` is sent. */
  readonly heartbeatS?: number;
  readonly reason: string;
  status: 'requested' | 'active' | 'error' | 'off';
  /** Events numbered so far (events-since-subscription-start). */
  eventCount: number;
  /** PHI_DELIVER sequence of the last numbered event. */
  lastSeq: number;
  /** Highest event number the endpoint acknowledged with 2xx. */
  delivered: number;
  /** Failed attempts since the last success. */
  failures: number;
  readonly created: string;
  /** When the endpoint last answered 2xx to any notification (epoch ms), for heartbeats. */
  lastSent?: number;
  /** A notification being posted by `holder` until `until` (epoch ms): a delete waits for it to end. */
  sending?: { readonly holder: string; readonly until: number };
  /** When it was deleted (status `off`). */
  deleted?: string;
}

function invalid(path: string, message: string): BrokerError {
  return new BrokerError('E_SUBSCRIPTION_INVALID', message, { path });
}

function extensionValue(exts: unknown, url: string): Record<string, unknown> | undefined {
  if (!Array.isArray(exts)) return undefined;
  return exts.find((e): e is Record<string, unknown> => typeof e === 'object' && e !== null && e.url === url);
}

function positiveInt(ext: Record<string, unknown> | undefined, path: string, what: string): number | undefined {
  if (ext === undefined) return undefined;
  const v = ext['valueUnsignedInt'] ?? ext['valuePositiveInt'];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
    throw invalid(path, `${path} ${what} must be a positive integer`);
  return v;
}

export interface SubscriptionLimits {
  /** The least `backport-heartbeat-period` accepted, seconds (default DEFAULT_HEARTBEAT_MIN_S). */
  readonly heartbeatMinS?: number;
}

/**
 * Checks a posted Subscription against the backport profile and the partner's registration: `criteria` one of its
 * topics, `channel.type` rest-hook, `channel.endpoint` one of its `restHooks`, a supported payload content.
 */
export function parseSubscription(
  body: unknown,
  partner: ServiceDef,
  catalog: Catalog,
  id: string,
  now: number,
  limits: SubscriptionLimits = {},
): SubscriptionRecord {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid('Subscription', 'expected a Subscription resource');
  const s = body as Subscription & Record<string, unknown>;
  if (s.resourceType !== 'Subscription') throw invalid('Subscription.resourceType', 'expected a Subscription resource');
  const topics = partnerTopics(catalog, partner.id);
  const resourceType = typeof s.criteria === 'string' ? topics.get(s.criteria) : undefined;
  if (resourceType === undefined)
    throw invalid(
      'Subscription.criteria',
      'Subscription.criteria must be the canonical URL of one of your topics (GET /metadata)',
    );
  const channel = s.channel as unknown as Record<string, unknown> | undefined;
  if (channel?.['type'] !== 'rest-hook')
    throw invalid('Subscription.channel.type', 'Subscription.channel.type must be rest-hook');
  const endpoint = channel['endpoint'];
  if (typeof endpoint !== 'string' || !(partner.partner?.restHooks ?? []).includes(endpoint))
    throw invalid(
      'Subscription.channel.endpoint',
      'Subscription.channel.endpoint must be one of your registered restHooks',
    );
  const payload = channel['payload'];
  if (payload !== undefined && payload !== 'application/fhir+json')
    throw invalid('Subscription.channel.payload', 'Subscription.channel.payload must be application/fhir+json');
  const contentExt = extensionValue(
    (channel['_payload'] as { extension?: unknown } | undefined)?.extension,
    PAYLOAD_CONTENT,
  );
  const content = (contentExt?.['valueCode'] ?? (payload === undefined ? 'empty' : 'id-only')) as PayloadContent;
  if (!SUPPORTED_CONTENT.includes(content))
    throw invalid(
      'Subscription.channel.payload.extension',
      `payload content must be one of ${SUPPORTED_CONTENT.join(', ')}`,
    );
  const headers = channel['header'] ?? [];
  if (!Array.isArray(headers) || headers.some((h) => typeof h !== 'string' || !/^[A-Za-z0-9-]+: ?[^\r\n]*$/.test(h)))
    throw invalid('Subscription.channel.header', 'each Subscription.channel.header must be one "Name: value" line');
  const timeoutS = Math.min(
    positiveInt(extensionValue(channel['extension'], TIMEOUT), 'Subscription.channel.extension', 'backport-timeout') ??
      DEFAULT_TIMEOUT_S,
    MAX_TIMEOUT_S,
  );
  const heartbeatS = positiveInt(
    extensionValue(channel['extension'], HEARTBEAT_PERIOD),
    'Subscription.channel.extension',
    'backport-heartbeat-period',
  );
  const minHeartbeat = limits.heartbeatMinS ?? DEFAULT_HEARTBEAT_MIN_S;
  if (heartbeatS !== undefined && (heartbeatS < minHeartbeat || heartbeatS > MAX_HEARTBEAT_S))
    throw invalid(
      'Subscription.channel.extension',
      `Subscription.channel.extension backport-heartbeat-period must be ${minHeartbeat}–${MAX_HEARTBEAT_S} seconds`,
    );
  return {
    id,
    partner: partner.id,
    topic: s.criteria,
    resourceType,
    endpoint,
    content,
    headers: headers as string[],
    timeoutS,
    ...(heartbeatS === undefined ? {} : { heartbeatS }),
    reason: typeof s.reason === 'string' ? s.reason.slice(0, 200) : 'partner subscription',
    status: 'requested',
    eventCount: 0,
    lastSeq: 0,
    delivered: 0,
    failures: 0,
    created: new Date(now).toISOString(),
  };
}

/** The Subscription resource as the gateway reports it (backport-subscription profile, current status). */
export function subscriptionResource(r: SubscriptionRecord): Subscription {
  return {
    resourceType: 'Subscription',
    id: r.id,
    meta: { profile: [BACKPORT_SUBSCRIPTION] },
    status: r.status,
    reason: r.reason,
    criteria: r.topic,
    channel: {
      extension: [
        { url: TIMEOUT, valueUnsignedInt: r.timeoutS },
        ...(r.heartbeatS === undefined ? [] : [{ url: HEARTBEAT_PERIOD, valueUnsignedInt: r.heartbeatS }]),
      ],
      type: 'rest-hook',
      endpoint: r.endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: PAYLOAD_CONTENT, valueCode: r.content }] },
      // Header values can be credentials of the partner's endpoint: reported by name only.
      ...(r.headers.length === 0 ? {} : { header: r.headers.map((h) => `${h.split(':')[0] ?? ''}: (set)`) }),
    },
  } as Subscription;
}
