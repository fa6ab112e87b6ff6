// The Subscription endpoints (Subscriptions Backport IG STU 1.1): `POST /Subscription` (with a handshake),
// `GET` and `DELETE /Subscription/[id]`, `GET /Subscription/[id]/$status` and `$events`, and the read of a
// notified copy, `GET /[type]/[id]` (for `id-only`, from the subscription's retained events). Each needs a
// bearer access token of this gateway (token-signer.ts) whose client owns the subscription; an unknown id and
// another partner's id answer alike (404), so ids reveal nothing.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Bundle } from 'fhir/r4.js';
import type { Catalog, ServiceDef } from '../../catalog/types.js';
import type { Logger } from '../../log/log.js';
import { BrokerError, isBrokerError } from '../../wire/errors.js';
import { partnersByClientId } from '../assertion.js';
import { presentedCertificate } from '../client-cert.js';
import { operationOutcome } from '../operation-outcome.js';
import type { TokenSigner } from '../token-signer.js';
import { parseScope } from '../../catalog/partner.js';
import {
  MAX_TIMEOUT_S,
  parseSubscription,
  partnerTopics,
  subscriptionResource,
  type SubscriptionLimits,
  type SubscriptionRecord,
} from './model.js';
import { notificationBundle, type NotificationEvent } from './notify.js';
import type { SubscriptionStore } from './store.js';
import { openEvent, readIndexDigest, renderNotification, type Deliverer, type EventOpener } from './worker.js';

const FHIR_JSON = 'application/fhir+json; charset=utf-8';
/** The most events one $events answer carries; ask again from the next number for more. */
export const MAX_EVENTS_PER_QUERY = 100;

export interface SubscriptionRouteOptions {
  readonly catalog: Catalog;
  readonly store: SubscriptionStore;
  readonly signer: TokenSigner;
  readonly deliverer: Deliverer;
  readonly baseUrl: () => string;
  readonly now: () => number;
  readonly logger: Logger;
  /** What opens a partner's events (its keyring), or undefined when this gateway holds no keys for it. */
  readonly opener: (partner: string) => EventOpener | undefined;
  /** Called after events were disclosed by a read ($events, or GET /[type]/[id]: `read`). */
  readonly onRead: (
    sub: SubscriptionRecord,
    events: readonly NotificationEvent[],
    operation: 'events' | 'read',
  ) => Promise<void>;
  /** Called after a subscription was deleted (switched off), before the answer (audit). */
  readonly onDeleted: (sub: SubscriptionRecord, who: Requester) => Promise<void>;
  readonly limits?: SubscriptionLimits;
}

/** Who asked: the partner's OAuth client, its access token's id and its address (for the audit trail). */
export interface Requester {
  readonly clientId: string;
  readonly tokenId: string | undefined;
  readonly address: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly err: BrokerError,
  ) {
    super(err.message);
  }
}

function send(reply: FastifyReply, status: number, body: object): FastifyReply {
  return reply.code(status).header('content-type', FHIR_JSON).send(body);
}

function fail(reply: FastifyReply, err: unknown, logger: Logger): FastifyReply {
  if (err instanceof HttpError)
    return send(
      reply,
      err.status,
      operationOutcome(
        err.status === 401
          ? 'login'
          : err.status === 403
            ? 'forbidden'
            : err.status === 404 || err.status === 410
              ? 'not-found'
              : 'invalid',
        err.err.code,
        err.err.message,
        err.err.path,
      ),
    );
  if (isBrokerError(err) && err.code === 'E_SUBSCRIPTION_INVALID')
    return send(reply, 400, operationOutcome('invalid', err.code, err.message, err.path));
  logger.error(
    { event: 'gateway.subscription.error', code: isBrokerError(err) ? err.code : undefined },
    'subscription request failed',
  );
  return send(reply, 500, operationOutcome('exception', undefined, 'internal error'));
}

export function registerSubscriptionRoutes(app: FastifyInstance, o: SubscriptionRouteOptions): void {
  const partners = partnersByClientId(o.catalog);
  // FHIR's JSON media type (http.html#mime-type); a body that is not JSON is a 400 from the error handler.
  if (!app.hasContentTypeParser('application/fhir+json'))
    app.addContentTypeParser('application/fhir+json', { parseAs: 'string' }, (_req, body, done) => {
      try {
        done(null, JSON.parse(body as string) as unknown);
      } catch {
        done(Object.assign(new Error('malformed JSON'), { statusCode: 400 }), undefined);
      }
    });

  /** The partner an access token names, with its granted scopes; 401 otherwise. */
  const authenticate = async (
    req: FastifyRequest,
  ): Promise<{ service: ServiceDef; scopes: string[]; who: Requester }> => {
    const h = req.headers.authorization;
    const token = typeof h === 'string' && /^Bearer [A-Za-z0-9._~+/-]+=*$/.test(h) ? h.slice(7) : undefined;
    const unauth = new HttpError(
      401,
      new BrokerError('E_PARTNER_AUTH', 'a valid bearer access token is required', { path: 'Authorization' }),
    );
    if (token === undefined) throw unauth;
    try {
      const claims = await o.signer.verifyAccessToken(
        token,
        o.baseUrl(),
        o.baseUrl(),
        o.now(),
        presentedCertificate(req.raw.socket),
      );
      const p = typeof claims['client_id'] === 'string' ? partners.get(claims['client_id']) : undefined;
      if (p === undefined) throw unauth;
      return {
        service: p.service,
        scopes: typeof claims['scope'] === 'string' ? claims['scope'].split(' ') : [],
        who: { clientId: claims['client_id'] as string, tokenId: claims.jti, address: req.ip },
      };
    } catch {
      throw unauth;
    }
  };
  /** SMART v2: reading notifications of a type needs `r` or `s` on it. */
  const mayRead = (scopes: readonly string[], type: string): boolean =>
    scopes.some((s) => {
      const p = parseScope(s);
      return p?.resourceType === type && /[rs]/.test(p.permissions);
    });
  const owned = async (
    req: FastifyRequest<{ Params: { id: string } }>,
  ): Promise<{ sub: SubscriptionRecord; service: ServiceDef; who: Requester }> => {
    const { service, scopes, who } = await authenticate(req);
    const sub = /^[A-Za-z0-9-]{1,64}$/.test(req.params.id) ? await o.store.get(req.params.id) : undefined;
    if (sub === undefined || sub.partner !== service.id)
      throw new HttpError(
        404,
        new BrokerError('E_SUBSCRIPTION_UNKNOWN', 'no subscription of yours has this id', { path: 'Subscription.id' }),
      );
    if (!mayRead(scopes, sub.resourceType))
      throw new HttpError(
        403,
        new BrokerError('E_PARTNER_SCOPE', `the token grants no read of ${sub.resourceType}`, { path: 'scope' }),
      );
    return { sub, service, who };
  };

  app.post('/Subscription', async (req, reply) => {
    try {
      const { service, scopes } = await authenticate(req);
      const record = parseSubscription(req.body, service, o.catalog, randomUUID(), o.now(), o.limits);
      if (!mayRead(scopes, record.resourceType))
        throw new HttpError(
          403,
          new BrokerError('E_PARTNER_SCOPE', `the token grants no read of ${record.resourceType}`, { path: 'scope' }),
        );
      await o.store.create(record);
      // Handshake (backport: type handshake, no events): the endpoint answering 2xx makes it active.
      const body = renderNotification(record, 'handshake', o.baseUrl(), []);
      const status = await o.deliverer.post(record, body, await o.signer.signDetached(new TextEncoder().encode(body)));
      const ok = status >= 200 && status < 300;
      const stored = await o.store.update(record.id, (r) => ({
        ...r,
        status: r.status === 'requested' ? (ok ? 'active' : 'error') : r.status,
        failures: ok ? 0 : r.failures + 1,
        ...(ok ? { lastSent: o.now() } : {}),
      }));
      o.logger.info(
        {
          event: 'gateway.subscription.created',
          subscription: record.id,
          partner: service.id,
          type: record.resourceType,
          handshake: status,
        },
        'subscription created',
      );
      return send(
        reply.header('location', `${o.baseUrl()}/Subscription/${record.id}`),
        201,
        subscriptionResource(stored),
      );
    } catch (err) {
      return fail(reply, err, o.logger);
    }
  });

  // FHIR read (http.html#read): a deleted subscription answers 410 Gone, as http.html#delete has it.
  app.get<{ Params: { id: string } }>('/Subscription/:id', async (req, reply) => {
    try {
      const { sub } = await owned(req);
      if (sub.status === 'off')
        throw new HttpError(
          410,
          new BrokerError('E_SUBSCRIPTION_DELETED', 'this subscription was deleted', { path: 'Subscription.id' }),
        );
      return send(reply, 200, subscriptionResource(sub));
    } catch (err) {
      return fail(reply, err, o.logger);
    }
  });

  // FHIR delete (http.html#delete): status `off`, no notification after the answer; deleting again answers alike.
  app.delete<{ Params: { id: string } }>('/Subscription/:id', async (req, reply) => {
    try {
      const { sub, who } = await owned(req);
      if (sub.status !== 'off') {
        // Waits out a notification already being posted (at most its timeout and a margin; claims use the real clock).
        const before = await o.store.remove(sub.id, Date.now, (MAX_TIMEOUT_S + 10) * 1000);
        if (before.status !== 'off') {
          await o.onDeleted({ ...before, status: 'off' }, who);
          o.logger.info(
            { event: 'gateway.subscription.deleted', subscription: sub.id, partner: sub.partner },
            'subscription deleted',
          );
        }
      }
      return reply.code(204).send();
    } catch (err) {
      return fail(reply, err, o.logger);
    }
  });

  app.get<{ Params: { id: string } }>('/Subscription/:id/$status', async (req, reply) => {
    try {
      const { sub } = await owned(req);
      const status = notificationBundle(
        sub,
        'query-status',
        o.baseUrl(),
        [],
        randomUUID(),
        new Date(o.now()).toISOString(),
      );
      // $status answers a searchset Bundle of SubscriptionStatus resources.
      const entry = status.entry?.[0];
      const answer: Bundle = {
        resourceType: 'Bundle',
        type: 'searchset',
        total: 1,
        entry: [{ fullUrl: entry?.fullUrl, resource: entry?.resource, search: { mode: 'match' } }],
      };
      return send(reply, 200, answer);
    } catch (err) {
      return fail(reply, err, o.logger);
    }
  });

  app.get<{ Params: { id: string }; Querystring: Record<string, string | string[] | undefined> }>(
    '/Subscription/:id/$events',
    async (req, reply) => {
      try {
        const { sub } = await owned(req);
        const number = (name: string, fallback: number): number => {
          const v = req.query[name];
          if (v === undefined) return fallback;
          if (typeof v !== 'string' || !/^[0-9]{1,15}$/.test(v))
            throw new HttpError(
              400,
              new BrokerError('E_SUBSCRIPTION_INVALID', `${name} must be one whole number`, { path: name }),
            );
          return Number(v);
        };
        const since = Math.max(1, number('eventsSinceNumber', 1));
        const until = Math.min(
          sub.eventCount,
          number('eventsUntilNumber', sub.eventCount),
          since + MAX_EVENTS_PER_QUERY - 1,
        );
        const opener = o.opener(sub.partner);
        if (opener === undefined)
          throw new BrokerError('E_CONFIG_INVALID', 'this gateway holds no keys for the partner');
        const events: NotificationEvent[] = [];
        for (let n = since; n <= until; n++) {
          const e = await o.store.getEvent(sub.id, n);
          if (e !== undefined) events.push(openEvent(e, opener)); // expired with PHI_DELIVER's retention: not returned
        }
        const body = renderNotification(sub, 'query-event', o.baseUrl(), events);
        if (events.length > 0) await o.onRead(sub, events, 'events');
        return reply.code(200).header('content-type', FHIR_JSON).send(body);
      } catch (err) {
        return fail(reply, err, o.logger);
      }
    },
  );

  // FHIR read (http.html#read) of the partner's own copy, as its last notification of that id carried it.
  app.get<{ Params: { type: string; id: string } }>('/:type/:id', async (req, reply) => {
    try {
      const { service, scopes } = await authenticate(req);
      const { type, id } = req.params;
      const unknown = (path: string): HttpError =>
        new HttpError(404, new BrokerError('E_RESOURCE_UNKNOWN', 'no copy of this resource is held for you', { path }));
      if (![...partnerTopics(o.catalog, service.id).values()].includes(type)) throw unknown('type');
      // SMART v2: `r` is read (`s`, search, is not).
      if (!scopes.some((s) => parseScope(s)?.resourceType === type && parseScope(s)?.permissions.includes('r')))
        throw new HttpError(
          403,
          new BrokerError('E_PARTNER_SCOPE', `the token grants no read of ${type}`, { path: 'scope' }),
        );
      const live = /^[A-Za-z0-9\-.]{1,64}$/.test(id) ? await o.store.forTopic(service.id, type) : [];
      if (live.length === 0) throw unknown('id');
      const opener = o.opener(service.id);
      if (opener === undefined) throw new BrokerError('E_CONFIG_INVALID', 'this gateway holds no keys for the partner');
      // The latest event that carried this copy, over the partner's live subscriptions to the type.
      const digest = readIndexDigest(opener.readKey, type, id);
      let found: { sub: SubscriptionRecord; number: number; at: string } | undefined;
      for (const s of live) {
        const i = await o.store.getIndex(s.id, digest);
        if (i !== undefined && (found === undefined || i.at > found.at)) found = { sub: s, number: i.number, at: i.at };
      }
      if (found === undefined) throw unknown('id');
      const { sub } = found;
      const stored = await o.store.getEvent(sub.id, found.number);
      if (stored === undefined)
        throw new HttpError(
          410,
          new BrokerError('E_RESOURCE_EXPIRED', 'the copy of this resource has passed its retention', { path: 'id' }),
        );
      const event = openEvent(stored, opener);
      if (event.resource?.resourceType !== type || event.resource.id !== id) throw unknown('id');
      // Audited before it is answered: a read the trail does not hold is never disclosed.
      await o.onRead(sub, [event], 'read');
      return reply.code(200).header('content-type', FHIR_JSON).send(JSON.stringify(event.resource));
    } catch (err) {
      return fail(reply, err, o.logger);
    }
  });
}
