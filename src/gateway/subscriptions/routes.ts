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
  /**
   * Records a POST or DELETE of a Subscription, answered or refused (the gateway's audit trail); a rejection fails
   * the request with a 500.
   */
  readonly onRequest: (request: SubscriptionRequest) => Promise<void>;
  readonly limits?: SubscriptionLimits;
}

/** Who asked: the partner's OAuth client, its access token's id and its address (for the audit trail). */
export interface Requester {
  readonly clientId: string;
  readonly tokenId: string | undefined;
  readonly address: string;
}

/** A partner's create or delete of a Subscription, as the audit trail records it: no value the partner sent. */
export interface SubscriptionRequest {
  readonly interaction: 'create' | 'delete';
  readonly address: string;
  /** The partner's catalog service id, once its access token verified. */
  readonly service?: string;
  readonly clientId?: string;
  readonly tokenId?: string;
  /** The HTTP status answered. */
  readonly status: number;
  readonly subscription?: string;
  /** The HTTP status the endpoint answered the handshake with (0: it could not be reached). */
  readonly handshake?: number;
  readonly code?: string;
  readonly path?: string;
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

/** The answer to a failed request: its status, OperationOutcome, and the code and element path it names. */
function failure(err: unknown, logger: Logger): { status: number; body: object; code?: string; path?: string } {
  if (err instanceof HttpError)
    return {
      status: err.status,
      body: operationOutcome(
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
      code: err.err.code,
      ...(err.err.path === undefined ? {} : { path: err.err.path }),
    };
  if (isBrokerError(err) && err.code === 'E_SUBSCRIPTION_INVALID')
    return {
      status: 400,
      body: operationOutcome('invalid', err.code, err.message, err.path),
      code: err.code,
      ...(err.path === undefined ? {} : { path: err.path }),
    };
  const code = isBrokerError(err) ? err.code : undefined;
  logger.error({ event: 'gateway.subscription.error', code }, 'subscription request failed');
  return {
    status: 500,
    body: operationOutcome('exception', undefined, 'internal error'),
    ...(code === undefined ? {} : { code }),
  };
}

function fail(reply: FastifyReply, err: unknown, logger: Logger): FastifyReply {
  const f = failure(err, logger);
  return send(reply, f.status, f.body);
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

  /**
   * Answers a failed create or delete after recording it; when the record cannot be stored either, logs that
   * (`gateway.audit.unrecorded`) and answers 500.
   */
  const refuse = async (
    reply: FastifyReply,
    err: unknown,
    request: Omit<SubscriptionRequest, 'status' | 'code' | 'path'>,
  ): Promise<FastifyReply> => {
    const f = failure(err, o.logger);
    try {
      await o.onRequest({
        ...request,
        status: f.status,
        ...(f.code === undefined ? {} : { code: f.code }),
        ...(f.path === undefined ? {} : { path: f.path }),
      });
    } catch (auditErr) {
      o.logger.error(
        {
          event: 'gateway.audit.unrecorded',
          interaction: request.interaction,
          subscription: request.subscription,
          status: f.status,
          code: isBrokerError(auditErr) ? auditErr.code : undefined,
        },
        'subscription request not recorded in the audit trail',
      );
      if (f.status < 500) return send(reply, 500, operationOutcome('exception', undefined, 'internal error'));
    }
    return send(reply, f.status, f.body);
  };
  const requester = (req: FastifyRequest, service: ServiceDef | undefined, who: Requester | undefined) => ({
    address: req.ip,
    ...(service === undefined ? {} : { service: service.id }),
    ...(who === undefined ? {} : { clientId: who.clientId }),
    ...(who?.tokenId === undefined ? {} : { tokenId: who.tokenId }),
  });

  // Audited after the handshake, before the answer: created (with the handshake's status) or refused (code, path).
  app.post('/Subscription', async (req, reply) => {
    let service: ServiceDef | undefined;
    let who: Requester | undefined;
    let created: string | undefined;
    try {
      const auth = await authenticate(req);
      ({ service, who } = auth);
      const record = parseSubscription(req.body, service, o.catalog, randomUUID(), o.now(), o.limits);
      if (!mayRead(auth.scopes, record.resourceType))
        throw new HttpError(
          403,
          new BrokerError('E_PARTNER_SCOPE', `the token grants no read of ${record.resourceType}`, { path: 'scope' }),
        );
      await o.store.create(record);
      created = record.id;
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
      await o.onRequest({
        interaction: 'create',
        ...requester(req, service, who),
        status: 201,
        subscription: record.id,
        handshake: status,
      });
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
      // A subscription whose create failed after it was stored (its handshake, its record in the trail) notifies
      // nobody: switched off as a delete would, and the partner told 500.
      if (created !== undefined) {
        const id = created;
        await o.store
          .remove(id, Date.now, (MAX_TIMEOUT_S + 10) * 1000)
          .catch((e: unknown) =>
            o.logger.error(
              { event: 'gateway.subscription.error', subscription: id, code: isBrokerError(e) ? e.code : undefined },
              'a subscription whose create failed could not be switched off',
            ),
          );
      }
      return refuse(reply, err, {
        interaction: 'create',
        ...requester(req, service, who),
        ...(created === undefined ? {} : { subscription: created }),
      });
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
  // Audited first, then changed: a failed audit write leaves the subscription as it was (500), a failed change is
  // audited as failed, and each DELETE answered 204 (a repeated one too) is in the trail.
  app.delete<{ Params: { id: string } }>('/Subscription/:id', async (req, reply) => {
    let service: ServiceDef | undefined;
    let who: Requester | undefined;
    let target: string | undefined;
    try {
      const found = await owned(req);
      ({ service, who } = found);
      const { sub } = found;
      target = sub.id;
      await o.onRequest({ interaction: 'delete', ...requester(req, service, who), status: 204, subscription: sub.id });
      // Idempotent: a repeated delete finishes one that failed half-way (its topic index). Waits out a notification
      // already being posted (at most its timeout and a margin; claims use the real clock).
      const before = await o.store.remove(sub.id, Date.now, (MAX_TIMEOUT_S + 10) * 1000);
      if (before.status !== 'off')
        o.logger.info(
          { event: 'gateway.subscription.deleted', subscription: sub.id, partner: sub.partner },
          'subscription deleted',
        );
      return reply.code(204).send();
    } catch (err) {
      return refuse(reply, err, {
        interaction: 'delete',
        ...requester(req, service, who),
        ...(target === undefined ? {} : { subscription: target }),
      });
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
