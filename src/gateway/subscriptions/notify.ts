// Notification Bundles (Subscriptions Backport IG STU 1.1, backport-subscription-notification-r4): a `history`
// Bundle whose first entry is the SubscriptionStatus (an R4 Parameters, backport-subscription-status-r4), then
// the partner's projection of each event's resource for `full-resource`, the URL it is read at for `id-only`. The same shape answers $status
// (query-status) and $events (query-event).
import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, FhirResource, Parameters, ParametersParameter } from 'fhir/r4.js';
import { BACKPORT_NOTIFICATION, BACKPORT_STATUS, type SubscriptionRecord } from './model.js';

export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

/** One numbered event with, for full-resource, the partner's projection as the broker delivered it. */
export interface NotificationEvent {
  readonly number: number;
  readonly timestamp: string;
  /** The delivery's id (urn:uuid fullUrl of the entry). */
  readonly deliveryId: string;
  readonly resource: FhirResource | undefined;
  /** id-only: `<Type>/<id>` of the copy, readable at `<base>/<Type>/<id>`. */
  readonly ref?: string;
}

/** The SubscriptionStatus parameters (R4 Parameters with the backport profile). */
export function subscriptionStatus(
  sub: SubscriptionRecord,
  type: NotificationType,
  baseUrl: string,
  events: readonly NotificationEvent[],
): Parameters {
  const parameter: ParametersParameter[] = [
    { name: 'subscription', valueReference: { reference: `${baseUrl}/Subscription/${sub.id}` } },
    { name: 'topic', valueCanonical: sub.topic },
    { name: 'status', valueCode: sub.status },
    { name: 'type', valueCode: type },
    // STU 1.1 carries the count as a string (an integer64 in R5).
    { name: 'events-since-subscription-start', valueString: String(sub.eventCount) },
    ...events.map((e): ParametersParameter => ({
      name: 'notification-event',
      part: [
        { name: 'event-number', valueString: String(e.number) },
        { name: 'timestamp', valueInstant: e.timestamp },
        ...(e.resource !== undefined
          ? [{ name: 'focus', valueReference: { reference: `urn:uuid:${e.deliveryId}` } }]
          : e.ref !== undefined
            ? [{ name: 'focus', valueReference: { reference: `${baseUrl}/${e.ref}` } }]
            : []),
      ],
    })),
  ];
  if (sub.status === 'error')
    parameter.push({
      name: 'error',
      valueCodeableConcept: {
        coding: [{ system: 'http://terminology.hl7.org/CodeSystem/subscription-error', code: 'no-response' }],
        text: 'the endpoint has not answered 2xx; notifications are kept and retried',
      },
    });
  return { resourceType: 'Parameters', meta: { profile: [BACKPORT_STATUS] }, parameter };
}

/** The notification (or $events / $status answer) Bundle. */
export function notificationBundle(
  sub: SubscriptionRecord,
  type: NotificationType,
  baseUrl: string,
  events: readonly NotificationEvent[],
  bundleId: string,
  now: string,
): Bundle {
  const status = subscriptionStatus(sub, type, baseUrl, events);
  const entries: BundleEntry[] = [
    {
      fullUrl: `urn:uuid:${randomUUID()}`,
      resource: status,
      request: { method: 'GET', url: `Subscription/${sub.id}/$status` },
      response: { status: '200' },
    },
  ];
  for (const e of events) {
    if (e.resource === undefined && e.ref !== undefined) {
      // id-only: the entry names the copy and carries no resource (Backport IG, notification-id-only example).
      entries.push({
        fullUrl: `${baseUrl}/${e.ref}`,
        request: { method: 'POST', url: e.ref.split('/')[0] as string },
        response: { status: '201' },
      });
      continue;
    }
    if (e.resource === undefined) continue;
    entries.push({
      fullUrl: `urn:uuid:${e.deliveryId}`,
      resource: e.resource,
      request: { method: 'POST', url: e.resource.resourceType },
      response: { status: '201' },
    });
  }
  return {
    resourceType: 'Bundle',
    id: bundleId,
    meta: { profile: [BACKPORT_NOTIFICATION] },
    type: 'history',
    timestamp: now,
    entry: entries,
  };
}
