// The partner gateway's HTTPS server (fastify): security headers (@fastify/helmet), per-client rate limits from the
// catalog (@fastify/rate-limit counting in NATS KV, shared by every gateway: rate-limit.ts; 429 with Retry-After), and the routes — SMART configuration, the gateway's JWKS, the
// token endpoint, the CapabilityStatement and the inbound FHIR writes of inbound.ts (docs/partner-gateway.md). Errors answer in the
// route's own vocabulary: RFC 6749 JSON on the token endpoint, a FHIR OperationOutcome elsewhere; neither echoes input.
// Token requests the rate limit refuses are audited once per window and key, the rest summarised (refusal-summary.ts).
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { decodeJwt, type JWK } from 'jose';
import type { AuditTrail } from '../audit/trail.js';
import type { Catalog } from '../catalog/types.js';
import type { Logger } from '../log/log.js';
import { partnersByClientId } from './assertion.js';
import { capabilityStatement } from './capability.js';
import { presentedCertificate } from './client-cert.js';
import { PartnerKeys, type JwksFetchOptions } from './partner-jwks.js';
import { OAuthError } from './oauth-error.js';
import { operationOutcome } from './operation-outcome.js';
import { registerProfileRoutes } from './profiles/routes.js';
import { registerSubscriptionRoutes, type SubscriptionRouteOptions } from './subscriptions/routes.js';
import { smartConfiguration } from './smart-configuration.js';
import { handleTokenRequest, type TokenContext } from './token.js';
import type { JtiStore } from './jti.js';
import type { TokenSigner } from './token-signer.js';
import type { RequestStore } from './idempotency.js';
import { registerInboundRoutes } from './inbound.js';
import type { PhiClient } from '../sdk/client.js';
import type { GatewayKeyView } from './key-directory.js';
import { RATE_UNAVAILABLE_RETRY_SECONDS, rateKey, rateKeyClient, type RateCounter } from './rate-limit.js';
import { RefusalSummaries, type RefusalSummary } from './refusal-summary.js';
import type { PartnerTokenFact } from '../audit/facts.js';

export const TOKEN_PATH = '/auth/token';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
/** A token request is a few form fields and one JWT. */
const TOKEN_BODY_LIMIT = 16 * 1024;
/** Requests from a client the catalog does not name: counted per address. */
const UNKNOWN_CLIENT_LIMIT = { max: 30, windowSeconds: 60 };
/** How often ended windows of rate-limit refusals are looked for and their summaries recorded. */
const SUMMARY_TICK_MS = 1_000;

export interface GatewayServerOptions {
  readonly catalog: Catalog;
  /** `clientCa`: request client certificates and verify them with these CA certificates (RFC 8705 mutual TLS). */
  readonly tls: { readonly key: string; readonly cert: string; readonly clientCa?: string };
  /** How partners' JWKS URLs are fetched (partner-jwks.ts). */
  readonly jwksFetch?: JwksFetchOptions;
  /** The public base URL partners use (the FHIR base; the token URL is `<baseUrl>/auth/token`), once listening. */
  readonly baseUrl: () => string;
  readonly jti: JtiStore;
  /** The rate-limit counters every gateway shares (KV phi_gateway_rate). */
  readonly rate: RateCounter;
  readonly signer: TokenSigner;
  /** The public keys /.well-known/jwks.json lists beside the token key, and partners' directory keys. */
  readonly keys: GatewayKeyView;
  readonly audit: AuditTrail;
  readonly logger: Logger;
  readonly version: string;
  readonly now: () => number;
  /** Publishing as each partner that may create (inbound.ts), and the idempotent answers. */
  readonly inbound: { readonly clients: ReadonlyMap<string, PhiClient>; readonly requests: RequestStore };
  readonly subscriptions: Omit<SubscriptionRouteOptions, 'catalog' | 'signer' | 'baseUrl' | 'now' | 'logger'>;
}

export async function buildGatewayServer(opts: GatewayServerOptions): Promise<FastifyInstance> {
  const { catalog, logger } = opts;
  const urls = (): { baseUrl: string; tokenUrl: string } => ({
    baseUrl: opts.baseUrl(),
    tokenUrl: `${opts.baseUrl()}${TOKEN_PATH}`,
  });
  const partners = partnersByClientId(catalog);
  const partnerKeys = new PartnerKeys(
    [...partners.values()].map((p) => p.partner),
    opts.jwksFetch,
  );
  const started = new Date(opts.now()).toISOString();
  const ctx = (): TokenContext => ({
    ...urls(),
    partners,
    keys: partnerKeys,
    jti: opts.jti,
    signer: opts.signer,
    now: opts.now,
    clientKeys: (service) => opts.keys.clientKeys(service, opts.now()),
  });
  // Client certificates are requested, not required: partners without `mtls` connect without one (RFC 8705 §2).
  const clientCert =
    opts.tls.clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: false, ca: opts.tls.clientCa };
  const app = Fastify({
    https: { key: opts.tls.key, cert: opts.tls.cert, ...clientCert },
    logger: false,
    bodyLimit: 1024 * 1024,
  });

  // RFC 6749 §4.4.2: the token request is form-encoded; kept as URLSearchParams so repeated parameters are seen.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: TOKEN_BODY_LIMIT },
    (_req, body, done) => done(null, new URLSearchParams(body as string)),
  );

  await app.register(helmet, { contentSecurityPolicy: { directives: { defaultSrc: ["'none'"] } } });
  // The client a request names: its client assertion's iss (token endpoint) or its bearer token's sub (FHIR routes).
  const clientOf = (req: FastifyRequest): string | undefined => {
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const assertion = req.body instanceof URLSearchParams ? req.body.get('client_assertion') : (bearer ?? null);
    if (assertion === null) return undefined;
    try {
      const claims = decodeJwt(assertion);
      const iss = req.body instanceof URLSearchParams ? claims.iss : claims.sub;
      return iss !== undefined && partners.has(iss) ? iss : undefined;
    } catch {
      return undefined;
    }
  };
  const limitOf = (key: string): { max: number; windowSeconds: number } =>
    partners.get(rateKeyClient(key) ?? '')?.partner.rateLimit ?? UNKNOWN_CLIENT_LIMIT;
  // After the body is parsed (preHandler), so the limit is the named client's from its catalog registration; keyed
  // by client and address together, so nobody exhausts a partner's budget by naming it.
  await app.register(rateLimit, {
    global: true,
    hook: 'preHandler',
    keyGenerator: (req) => rateKey(clientOf(req), req.ip),
    store: opts.rate.store(),
    max: (_req, key) => limitOf(key).max,
    timeWindow: (_req, key) => limitOf(key).windowSeconds * 1000,
    errorResponseBuilder: (_req, context) => ({
      statusCode: 429,
      code: 'E_RATE_LIMITED',
      message: `rate limit exceeded, retry in ${Math.ceil(context.ttl / 1000)} seconds`,
    }),
  });

  // Token requests the rate limit refused: the first per key, code and window is an AuditEvent before the answer,
  // the rest one summary at the window's end (refusal-summary.ts). A record that cannot be stored is logged and
  // counted into the next summary, which is retried each tick until the trail takes it.
  const refusals = new RefusalSummaries(opts.now);
  const windowOf = (key: string): number => limitOf(key).windowSeconds * 1000;
  const refusalFact = (key: string, address: string, code: string): PartnerTokenFact => {
    const clientId = rateKeyClient(key);
    return {
      kind: 'partner-token',
      address,
      ...(clientId === undefined ? {} : { clientId }),
      granted: false,
      code,
    };
  };
  const unrecorded = (code: string, key: string, count: number, err: unknown, lost = false): void =>
    logger.error(
      {
        event: lost ? 'gateway.audit.lost' : 'gateway.audit.unrecorded',
        kind: 'partner-token',
        code,
        client: rateKeyClient(key),
        count,
        cause: (err as { code?: unknown }).code,
      },
      lost
        ? 'token refusals not recorded in the audit trail at stop'
        : 'token refusals not recorded in the audit trail yet; counted into the next summary',
    );
  const auditRateRefusal = async (req: FastifyRequest, code: string): Promise<void> => {
    const key = rateKey(clientOf(req), req.ip);
    if (refusals.refuse(key, code, req.ip, windowOf(key)) === 'counted') return;
    try {
      await opts.audit.record([refusalFact(key, req.ip, code)]);
    } catch (err) {
      unrecorded(code, key, 1, err);
      refusals.recount(key, code, req.ip, windowOf(key));
    }
  };
  // A token request refused for its body (not a form, too large, unparsable) before any client could be read from
  // it: audited like every other token refusal, naming no client (45 CFR 164.312(b)); rate-limited before it got here.
  const auditBodyRefusal = (req: FastifyRequest): Promise<void> =>
    opts.audit.record([
      { kind: 'partner-token', address: req.ip, granted: false, code: 'E_PARTNER_REQUEST', path: 'body' },
    ]);
  const recordSummary = (s: RefusalSummary): Promise<void> =>
    opts.audit.record([
      {
        ...refusalFact(s.key, s.address, s.code),
        summary: {
          count: s.count,
          firstSeen: new Date(s.first).toISOString(),
          lastSeen: new Date(s.last).toISOString(),
        },
      },
    ]);
  let flushing: Promise<void> | undefined;
  const flush = async (all: boolean): Promise<void> => {
    for (const s of refusals.due(all))
      await recordSummary(s).catch((err: unknown) => {
        unrecorded(s.code, s.key, s.count, err, all);
        if (!all) refusals.restore(s, windowOf(s.key));
      });
  };
  const tick = setInterval(() => {
    flushing ??= flush(false).finally(() => {
      flushing = undefined;
    });
  }, SUMMARY_TICK_MS);
  tick.unref();
  // At stop every open window's summary is recorded (the audit trail closes after the server).
  app.addHook('onClose', async () => {
    clearInterval(tick);
    await flushing;
    await flush(true);
  });

  app.setErrorHandler(async (err: { statusCode?: number; code?: string; message?: string }, req, reply) => {
    const status =
      typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500)
      logger.error({ event: 'gateway.error', route: req.routeOptions.url, code: err.code }, 'gateway error');
    const limited = status === 429;
    // The rate-limit counters could not be read: refused, never served uncounted (rate-limit.ts).
    const uncounted = status === 503 && err.code === 'E_RATE_LIMIT_UNAVAILABLE';
    if (uncounted) reply.header('retry-after', String(RATE_UNAVAILABLE_RETRY_SECONDS));
    const rateCode = limited ? 'E_RATE_LIMITED' : uncounted ? 'E_RATE_LIMIT_UNAVAILABLE' : undefined;
    const description =
      rateCode !== undefined
        ? (err.message ?? 'rate limit exceeded')
        : status >= 500
          ? 'internal error'
          : 'malformed request';
    // A Subscription create or delete refused before its handler ran (unparsable body, media type, rate limit) is
    // audited like those it refuses itself (subscriptions/routes.ts); unverified, so no client is named.
    const route = req.routeOptions.url;
    const interaction =
      req.method === 'POST' && route === '/Subscription'
        ? 'create'
        : req.method === 'DELETE' && route === '/Subscription/:id'
          ? 'delete'
          : undefined;
    if (interaction !== undefined) {
      const code = rateCode ?? (status < 500 ? 'E_PARTNER_REQUEST' : undefined);
      try {
        await opts.subscriptions.onRequest({
          interaction,
          address: req.ip,
          status,
          ...(code === undefined ? {} : { code }),
        });
      } catch (auditErr) {
        logger.error(
          {
            event: 'gateway.audit.unrecorded',
            interaction,
            status,
            code: (auditErr as { code?: unknown }).code,
          },
          'subscription request not recorded in the audit trail',
        );
        return sendFhir(reply.code(500), operationOutcome('exception', undefined, 'internal error'));
      }
    }
    if (req.url.startsWith(TOKEN_PATH)) {
      if (rateCode !== undefined) await auditRateRefusal(req, rateCode);
      else if (status < 500)
        try {
          await auditBodyRefusal(req);
        } catch (auditErr) {
          logger.error(
            {
              event: 'gateway.audit.unrecorded',
              kind: 'partner-token',
              status,
              code: (auditErr as { code?: unknown }).code,
            },
            'token request not recorded in the audit trail',
          );
          return reply.code(500).send({ error: 'server_error', error_description: 'internal error' });
        }
      const e =
        rateCode !== undefined
          ? { error: rateCode, error_description: description }
          : new OAuthError('invalid_request', 'E_PARTNER_REQUEST', 'body', description).body();
      return reply.code(status).send(e);
    }
    return sendFhir(
      reply.code(status),
      operationOutcome(
        limited ? 'throttled' : uncounted ? 'transient' : status >= 500 ? 'exception' : 'invalid',
        rateCode,
        description,
      ),
    );
  });
  app.setNotFoundHandler((_req, reply) =>
    sendFhir(reply.code(404), operationOutcome('not-supported', undefined, 'this gateway serves no such endpoint')),
  );

  app.get('/.well-known/smart-configuration', () => smartConfiguration(catalog, urls()));
  // RFC 7517 section 5: the token and notification key, then the broker's and the gateways' usable public keys.
  app.get('/.well-known/jwks.json', (): { keys: JWK[] } => {
    const keys = [...opts.signer.jwks().keys, ...opts.keys.publicKeys(opts.now())];
    return { keys: keys.filter((k, i) => keys.findIndex((x) => x.kid === k.kid) === i) };
  });
  app.get('/metadata', (_req, reply) => sendFhir(reply, capabilityStatement(catalog, urls(), started, opts.version)));
  registerProfileRoutes(app, catalog);
  registerSubscriptionRoutes(app, {
    ...opts.subscriptions,
    catalog,
    signer: opts.signer,
    baseUrl: opts.baseUrl,
    now: opts.now,
    logger,
  });
  app.post(TOKEN_PATH, async (req, reply) => {
    reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
    if (!(req.body instanceof URLSearchParams)) {
      const e = new OAuthError(
        'invalid_request',
        'E_PARTNER_REQUEST',
        'body',
        'expected application/x-www-form-urlencoded',
      );
      await auditBodyRefusal(req);
      return reply.code(e.status).send(e.body());
    }
    const answer = await handleTokenRequest(req.body, req.ip, presentedCertificate(req.raw.socket), ctx());
    // Stored before answering: no token leaves that the audit trail does not hold (45 CFR 164.312(b)).
    await opts.audit.record([answer.fact]);
    logger.info(
      {
        event: answer.fact.granted ? 'gateway.token.granted' : 'gateway.token.refused',
        client: answer.fact.clientId,
        code: answer.fact.code,
        path: answer.fact.path,
      },
      answer.fact.granted ? 'access token granted' : 'token request refused',
    );
    return reply.code(answer.status).send(answer.body);
  });
  await registerInboundRoutes(app, {
    catalog,
    partners,
    clients: opts.inbound.clients,
    requests: opts.inbound.requests,
    audit: opts.audit,
    logger,
    signer: opts.signer,
    baseUrl: opts.baseUrl,
    now: opts.now,
  });
  return app;
}

function sendFhir(reply: FastifyReply, resource: object): FastifyReply {
  return reply.header('content-type', FHIR_JSON).send(resource);
}
