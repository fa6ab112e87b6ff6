// Inbound exchange on the partner gateway (docs/partner-gateway.md, "Sending to the broker"): `POST /[type]` (FHIR
// create), `POST /` with a `transaction` or `batch` Bundle, `POST /$process-message` with a `message` Bundle. The
// bearer token names the partner; each resource goes through the SDK sealed and signed as that partner's service,
// and the answer is built from the broker's signed receipt. Every request, answered or refused, is an AuditEvent;
// a retry with the same idempotency key gets the stored answer (idempotency.ts). Nothing the partner sent is echoed.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type {
  Bundle,
  BundleEntry,
  BundleEntryResponse,
  MessageHeader,
  OperationOutcome,
  OperationOutcomeIssue,
} from 'fhir/r4.js';
import type { AuditTrail } from '../audit/trail.js';
import type { PartnerRequestFact } from '../audit/facts.js';
import type { Catalog, PartnerDef, ServiceDef } from '../catalog/types.js';
import { splitBundle } from '../fhir/bundle.js';
import { isR4ResourceType } from '../fhir/structure.js';
import { DEFAULT_VALIDATION_LIMITS } from '../fhir/limits.js';
import { validateResource } from '../fhir/validate.js';
import type { Logger } from '../log/log.js';
import type { PhiClient, PublishResult } from '../sdk/client.js';
import { BrokerError, type BrokerErrorCode } from '../wire/errors.js';
import { RESOURCE_TYPE_NAME_PATTERN } from '../wire/ids.js';
import { parseJsonText } from '../wire/json.js';
import { InboundError, requireCreate, verifyBearer, type Caller } from './bearer.js';
import { presentedCertificate } from './client-cert.js';
import { httpStatusOf, statusLine } from './http-status.js';
import type { RequestStore, StoredAnswer, Ticket } from './idempotency.js';
import { ERROR_CODE_SYSTEM } from './operation-outcome.js';
import type { TokenSigner } from './token-signer.js';

/** The largest inbound body (FHIR JSON); larger is 413 before anything is read into a resource. */
export const INBOUND_BODY_LIMIT = 1024 * 1024;
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,256}$/;

export interface InboundOptions {
  readonly catalog: Catalog;
  readonly partners: ReadonlyMap<string, { service: ServiceDef; partner: PartnerDef }>;
  /** An SDK client per partner that may create (its service id → client): publishes as that partner. */
  readonly clients: ReadonlyMap<string, PhiClient>;
  readonly requests: RequestStore;
  readonly audit: AuditTrail;
  readonly logger: Logger;
  readonly signer: TokenSigner;
  readonly baseUrl: () => string;
  readonly now: () => number;
}

type Interaction = PartnerRequestFact['interaction'];

interface Answer extends StoredAnswer {
  readonly messageIds: readonly string[];
  readonly code?: BrokerErrorCode;
  readonly path?: string;
  /** Nothing reached JetStream: the idempotency key is given up so a retry publishes. */
  readonly retryable?: boolean;
}

/** One resource's verdict, as a Bundle entry response and as HTTP. */
interface Verdict {
  readonly status: number;
  readonly id: string;
  readonly response: BundleEntryResponse;
  readonly outcome: OperationOutcome;
  readonly code?: BrokerErrorCode;
  readonly path?: string;
  readonly retryable: boolean;
}

const issue = (
  severity: OperationOutcomeIssue['severity'],
  code: OperationOutcomeIssue['code'],
  diagnostics: string,
  broker?: BrokerErrorCode,
  path?: string,
): OperationOutcomeIssue => ({
  severity,
  code,
  ...(broker === undefined ? {} : { details: { coding: [{ system: ERROR_CODE_SYSTEM, code: broker }], text: broker } }),
  diagnostics,
  ...(path === undefined ? {} : { expression: [path] }),
});

const outcome = (...issues: OperationOutcomeIssue[]): OperationOutcome => ({
  resourceType: 'OperationOutcome',
  issue: issues,
});

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A broker path (`ExplanationOfBenefit.status`) of entry `index`'s resource as a FHIRPath from the Bundle. */
function entryPath(index: number, type: string | undefined, path: string | undefined): string {
  const root = `Bundle.entry[${index}].resource`;
  if (path === undefined || path === '') return root;
  if (type !== undefined && path === type) return root;
  if (type !== undefined && path.startsWith(`${type}.`)) return `${root}${path.slice(type.length)}`;
  return path.startsWith('Bundle.') ? path : `${root}.${path}`;
}

export async function registerInboundRoutes(app: FastifyInstance, opts: InboundOptions): Promise<void> {
  const { logger } = opts;

  /** What the partner gets for one resource the SDK published: 201 + Location, the broker's refusal, 202, or 503. */
  const verdictOf = (type: string | undefined, r: PublishResult): Verdict => {
    const now = new Date(opts.now());
    switch (r.status) {
      case 'accepted': {
        // The broker's message id is the resource's id at the gateway: [base]/[type]/[id]/_history/1 (FHIR create).
        const location = `${opts.baseUrl()}/${type ?? 'Resource'}/${r.id}/_history/1`;
        return {
          status: 201,
          id: r.id,
          response: { status: statusLine(201), location, etag: 'W/"1"', lastModified: now.toISOString() },
          outcome: outcome(issue('information', 'informational', `accepted by the broker as message ${r.id}`)),
          retryable: false,
        };
      }
      case 'rejected': {
        const [status, code] = httpStatusOf(r.code);
        return {
          status,
          id: r.id,
          response: { status: statusLine(status) },
          outcome: outcome(issue('error', code, r.message, r.code, r.path)),
          code: r.code,
          ...(r.path === undefined ? {} : { path: r.path }),
          retryable: false,
        };
      }
      case 'stored':
        return {
          status: 202,
          id: r.id,
          response: { status: statusLine(202) },
          outcome: outcome(
            issue('information', 'informational', `stored as message ${r.id}; the broker's verdict is not known yet`),
          ),
          retryable: false,
        };
      case 'not_stored':
        return {
          status: 503,
          id: r.id,
          response: { status: statusLine(503) },
          outcome: outcome(issue('error', 'transient', 'not stored; safe to send again', r.code)),
          code: r.code,
          retryable: true,
        };
    }
  };

  const clientOf = (caller: Caller): PhiClient => {
    const client = opts.clients.get(caller.service.id);
    // requireCreate passed, so the partner has a create scope and a client: this is a wiring fault.
    if (client === undefined) throw new BrokerError('E_INTERNAL', `no SDK client for ${caller.service.id}`);
    return client;
  };

  /** POST /[type]: the body goes to the SDK as text (number lexemes kept; not JSON goes raw and is quarantined). */
  const create = async (caller: Caller, type: string, text: string, value: unknown): Promise<Answer> => {
    if (!RESOURCE_TYPE_NAME_PATTERN.test(type) || !isR4ResourceType(type))
      throw new InboundError(404, 'not-supported', 'E_UNKNOWN_RESOURCE_TYPE', undefined, 'no such resource type');
    requireCreate(caller, type, type);
    if (isObject(value) && value['resourceType'] !== type)
      throw new InboundError(400, 'invalid', 'E_PARTNER_REQUEST', 'resourceType', 'differs from the type in the URL');
    const v = verdictOf(type, await clientOf(caller).publish(text));
    const headers: Record<string, string> = {};
    if (v.response.location !== undefined) headers['location'] = v.response.location;
    if (v.response.etag !== undefined) headers['etag'] = v.response.etag;
    if (v.response.lastModified !== undefined)
      headers['last-modified'] = new Date(v.response.lastModified).toUTCString();
    if (v.status === 503) headers['retry-after'] = '1';
    return {
      status: v.status,
      headers,
      body: v.outcome,
      messageIds: [v.id],
      ...(v.code === undefined ? {} : { code: v.code }),
      ...(v.path === undefined ? {} : { path: v.path }),
      retryable: v.retryable,
    };
  };

  /**
   * The entries of a transaction, batch or message Bundle checked before anything is published: each must be a
   * create (POST, for transaction and batch) of a type the token may create, stand alone (splitBundle), and — when
   * `validate` — pass the broker's own FHIR R4 validation. Returns the publishable entries and the refusals.
   */
  const prepare = (
    caller: Caller,
    bundle: Record<string, unknown>,
    first: number,
    requireMethod: boolean,
    validate: boolean,
  ): {
    readonly entries: { index: number; type: string | undefined; resource?: unknown; raw?: unknown }[];
    readonly refused: Map<number, InboundError>;
  } => {
    const list = Array.isArray(bundle['entry']) ? (bundle['entry'] as unknown[]) : [];
    if (list.length <= first)
      throw new InboundError(400, 'invalid', 'E_PARTNER_REQUEST', 'Bundle.entry', 'the Bundle has no entry to process');
    const split = splitBundle(bundle);
    const refused = new Map<number, InboundError>();
    const entries: { index: number; type: string | undefined; resource?: unknown; raw?: unknown }[] = [];
    for (let index = first; index < list.length; index++) {
      const entry = list[index];
      const resource = isObject(entry) ? entry['resource'] : undefined;
      const rt = isObject(resource) ? resource['resourceType'] : undefined;
      const type = typeof rt === 'string' && RESOURCE_TYPE_NAME_PATTERN.test(rt) ? rt : undefined;
      try {
        const request = isObject(entry) ? entry['request'] : undefined;
        const method = isObject(request) ? request['method'] : undefined;
        if (requireMethod && method !== 'POST')
          throw new InboundError(
            400,
            'not-supported',
            'E_PARTNER_REQUEST',
            `Bundle.entry[${index}].request.method`,
            'only POST (create) is supported',
          );
        if (type === undefined)
          throw new InboundError(
            400,
            'structure',
            'E_NOT_FHIR',
            `Bundle.entry[${index}].resource.resourceType`,
            'missing or not a resource type',
          );
        requireCreate(caller, type, `Bundle.entry[${index}].resource`);
        const part = split.find((s) => s.index === index);
        if (part === undefined || !part.ok) {
          if (validate) {
            const e = part?.error;
            throw new InboundError(
              400,
              'invalid',
              'E_BUNDLE_INVALID',
              e?.path ?? `Bundle.entry[${index}]`,
              e?.message ?? 'the entry cannot stand alone',
            );
          }
          entries.push({ index, type, raw: part?.entry ?? entry });
          continue;
        }
        if (validate) validateResource(part.resource, DEFAULT_VALIDATION_LIMITS);
        entries.push({ index, type, resource: part.resource });
      } catch (err) {
        if (err instanceof InboundError) refused.set(index, err);
        else if (err instanceof BrokerError) {
          const [status, code] = httpStatusOf(err.code);
          refused.set(index, new InboundError(status, code, err.code, entryPath(index, type, err.path), err.message));
        } else throw err;
      }
    }
    return { entries, refused };
  };

  /** A transaction or message refused before anything was published: one OperationOutcome naming every entry. */
  const refuseAll = (
    refused: Map<number, InboundError>,
  ): InboundError & { readonly issues: OperationOutcomeIssue[] } => {
    const all = [...refused.values()];
    const statuses = new Set(all.map((e) => e.status));
    const first = all[0] as InboundError;
    const err = new InboundError(
      statuses.size === 1 ? first.status : 400,
      first.issueCode,
      first.code,
      first.path,
      `${all.length} entr${all.length === 1 ? 'y' : 'ies'} refused; nothing was published`,
    );
    return Object.assign(err, {
      issues: all.map((e) => issue('error', e.issueCode, e.message, e.code, e.path)),
    });
  };

  /** Publishes the prepared entries concurrently; verdicts by entry index. */
  const publishAll = async (
    caller: Caller,
    entries: readonly { index: number; type: string | undefined; resource?: unknown; raw?: unknown }[],
  ): Promise<Map<number, Verdict>> => {
    const client = clientOf(caller);
    const verdicts = await Promise.all(
      entries.map(async (e) => {
        const r = await client.publish(e.resource ?? { ...(e.raw as object) });
        const v = verdictOf(e.type, r);
        const path = v.path === undefined ? undefined : entryPath(e.index, e.type, v.path);
        return [
          e.index,
          path === undefined
            ? v
            : {
                ...v,
                path,
                outcome: outcome(
                  issue(
                    'error',
                    v.outcome.issue[0]?.code ?? 'invalid',
                    v.outcome.issue[0]?.diagnostics ?? '',
                    v.code,
                    path,
                  ),
                ),
              },
        ] as const;
      }),
    );
    return new Map(verdicts);
  };

  /** POST / with a transaction or batch Bundle. */
  const bundle = async (caller: Caller, value: unknown): Promise<Answer & { interaction: Interaction }> => {
    if (!isObject(value) || value['resourceType'] !== 'Bundle')
      throw new InboundError(400, 'invalid', 'E_PARTNER_REQUEST', 'resourceType', 'expected a Bundle');
    const kind = value['type'];
    if (kind !== 'transaction' && kind !== 'batch')
      throw new InboundError(400, 'not-supported', 'E_PARTNER_REQUEST', 'Bundle.type', 'expected transaction or batch');
    const transaction = kind === 'transaction';
    const { entries, refused } = prepare(caller, value, 0, true, transaction);
    // A transaction is all or nothing up to the broker: one refused entry and none is published.
    if (transaction && refused.size > 0) throw refuseAll(refused);
    const verdicts = await publishAll(caller, entries);
    const total = (value['entry'] as unknown[]).length;
    const responses: BundleEntry[] = [];
    for (let i = 0; i < total; i++) {
      const v = verdicts.get(i);
      const r = refused.get(i);
      responses.push(
        v !== undefined
          ? { response: { ...v.response, ...(v.status >= 400 || v.status === 202 ? { outcome: v.outcome } : {}) } }
          : {
              response: {
                status: statusLine(r?.status ?? 500),
                outcome: outcome(
                  issue('error', r?.issueCode ?? 'exception', r?.message ?? 'not processed', r?.code, r?.path),
                ),
              },
            },
      );
    }
    const body: Bundle = { resourceType: 'Bundle', id: randomUUID(), type: `${kind}-response`, entry: responses };
    return {
      interaction: kind,
      status: 200,
      headers: {},
      body,
      messageIds: [...verdicts.values()].map((v) => v.id),
      retryable: [...verdicts.values()].some((v) => v.retryable),
    };
  };

  /** POST /$process-message: a message Bundle, its MessageHeader first; the entries after it are published. */
  const message = async (caller: Caller, value: unknown): Promise<Answer> => {
    if (!isObject(value) || value['resourceType'] !== 'Bundle' || value['type'] !== 'message')
      throw new InboundError(400, 'invalid', 'E_PARTNER_REQUEST', 'Bundle.type', 'expected a Bundle of type message');
    const header = headerOf(value);
    const { entries, refused } = prepare(caller, value, 1, false, true);
    if (refused.size > 0) throw refuseAll(refused);
    const verdicts = await publishAll(caller, entries);
    const all = [...verdicts.entries()];
    const failed = all.filter(([, v]) => v.status >= 400);
    const code: 'ok' | 'transient-error' | 'fatal-error' =
      failed.length === 0 ? 'ok' : failed.every(([, v]) => v.retryable) ? 'transient-error' : 'fatal-error';
    const outcomeId = randomUUID();
    const details = outcome(
      ...all.map(([index, v]) =>
        v.status < 300
          ? issue('information', 'informational', `Bundle.entry[${index}]: ${v.response.location ?? `message ${v.id}`}`)
          : (v.outcome.issue[0] as OperationOutcomeIssue),
      ),
    );
    const response: MessageHeader = {
      resourceType: 'MessageHeader',
      id: randomUUID(),
      ...header.event,
      source: { endpoint: opts.baseUrl() },
      response: { identifier: header.id, code, details: { reference: `urn:uuid:${outcomeId}` } },
    };
    const body: Bundle = {
      resourceType: 'Bundle',
      id: randomUUID(),
      type: 'message',
      timestamp: new Date(opts.now()).toISOString(),
      entry: [
        { fullUrl: `urn:uuid:${response.id}`, resource: response },
        { fullUrl: `urn:uuid:${outcomeId}`, resource: { ...details, id: outcomeId } },
      ],
    };
    return {
      status: 200,
      headers: {},
      body,
      messageIds: all.map(([, v]) => v.id),
      retryable: code === 'transient-error',
    };
  };

  /** The idempotency key of a request: Idempotency-Key, If-None-Exist, else the Bundle's or MessageHeader's id. */
  const keyOf = (req: FastifyRequest, kind: 'create' | 'bundle' | 'message', value: unknown) => {
    for (const [header, source] of [
      ['idempotency-key', 'Idempotency-Key'],
      ['if-none-exist', 'If-None-Exist'],
    ] as const) {
      const v = req.headers[header];
      if (v === undefined) continue;
      if (typeof v !== 'string' || !IDEMPOTENCY_KEY.test(v))
        throw new InboundError(
          400,
          'invalid',
          'E_PARTNER_REQUEST',
          source,
          'expected 1 to 256 visible ASCII characters',
        );
      return { source, key: v };
    }
    if (kind === 'bundle' && isObject(value) && typeof value['id'] === 'string')
      return { source: 'Bundle.id', key: value['id'] };
    if (kind === 'message' && isObject(value)) return { source: 'MessageHeader.id', key: headerOf(value).id };
    return undefined;
  };

  const audit = async (fact: PartnerRequestFact): Promise<void> => {
    // Stored before answering, as token requests are: no answer leaves that the audit trail does not hold.
    await opts.audit.record([fact]);
    logger.info(
      {
        event: fact.status < 400 ? 'gateway.request.answered' : 'gateway.request.refused',
        client: fact.clientId,
        interaction: fact.interaction,
        status: fact.status,
        code: fact.code,
        path: fact.path,
        replayed: fact.replayed,
        messages: fact.messageIds.length,
      },
      'partner request',
    );
  };

  const handler =
    (kind: 'create' | 'bundle' | 'message') =>
    async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      let caller: Caller | undefined;
      let interaction: Interaction = kind === 'create' ? 'create' : kind === 'message' ? 'process-message' : 'batch';
      let answer: Answer;
      let replayed = false;
      try {
        caller = await verifyBearer(req.headers.authorization, {
          signer: opts.signer,
          baseUrl: opts.baseUrl(),
          partners: opts.partners,
          now: opts.now(),
          certificate: presentedCertificate(req.raw.socket),
        });
        const text = (req.body as { text?: unknown } | undefined)?.text;
        if (typeof text !== 'string')
          throw new InboundError(
            415,
            'not-supported',
            'E_PARTNER_REQUEST',
            'Content-Type',
            'expected application/fhir+json',
          );
        const parsed = parseJsonText(text);
        const value = 'value' in parsed ? parsed.value : undefined;
        if (kind !== 'create' && value === undefined)
          throw new InboundError(400, 'structure', 'E_JSON_MALFORMED', undefined, 'the body is not well-formed JSON');
        if (kind === 'bundle' && isObject(value) && value['type'] === 'transaction') interaction = 'transaction';
        const key = keyOf(req, kind, value);
        let ticket: Ticket | undefined;
        if (key !== undefined) {
          const claim = await opts.requests.claim(caller.partner.clientId, key.source, key.key, text);
          if (claim.kind === 'replay') {
            replayed = true;
            answer = { ...claim.answer, messageIds: [] };
          } else ticket = claim;
        }
        if (!replayed) {
          const c = caller;
          try {
            answer =
              kind === 'create'
                ? await create(c, (req.params as { type: string }).type, text, value)
                : kind === 'bundle'
                  ? await bundle(c, value)
                  : await message(c, value);
          } catch (err) {
            if (ticket !== undefined) await opts.requests.release(ticket);
            throw err;
          }
          if (ticket !== undefined) {
            if (answer.retryable === true) await opts.requests.release(ticket);
            else
              await opts.requests.answer(ticket, { status: answer.status, headers: answer.headers, body: answer.body });
          }
        }
      } catch (err) {
        if (!(err instanceof InboundError)) throw err;
        answer = refusalOf(err);
      }
      await audit({
        kind: 'partner-request',
        address: req.ip,
        ...(caller === undefined
          ? {}
          : { service: caller.service.id, clientId: caller.partner.clientId, tokenId: caller.tokenId }),
        interaction,
        status: answer!.status,
        messageIds: answer!.messageIds,
        ...(replayed ? { replayed } : {}),
        ...(answer!.code === undefined ? {} : { code: answer!.code }),
        ...(answer!.path === undefined ? {} : { path: answer!.path }),
      });
      return reply.code(answer!.status).headers(answer!.headers).header('content-type', FHIR_JSON).send(answer!.body);
    };

  await app.register(async (scope) => {
    // FHIR JSON only (R4 http.html "Content Types"); anything else is 415 through the error handler below.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      ['application/fhir+json', 'application/json'],
      { parseAs: 'string', bodyLimit: INBOUND_BODY_LIMIT },
      (_req, body, done) => done(null, { text: body as string }),
    );
    scope.setErrorHandler(async (err: { statusCode?: number; code?: string; message?: string }, req, reply) => {
      const status =
        typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
      const refusal =
        status === 413
          ? new InboundError(
              413,
              'too-costly',
              'E_TOO_LARGE',
              undefined,
              `the body is larger than ${INBOUND_BODY_LIMIT} bytes`,
            )
          : status === 415
            ? new InboundError(
                415,
                'not-supported',
                'E_PARTNER_REQUEST',
                'Content-Type',
                'expected application/fhir+json',
              )
            : status === 429
              ? new InboundError(429, 'throttled', 'E_RATE_LIMITED', undefined, err.message ?? 'rate limit exceeded')
              : status === 503 && err.code === 'E_RATE_LIMIT_UNAVAILABLE'
                ? new InboundError(503, 'transient', 'E_RATE_LIMIT_UNAVAILABLE', undefined, err.message ?? '')
                : status < 500
                  ? new InboundError(status, 'invalid', 'E_PARTNER_REQUEST', undefined, 'malformed request')
                  : undefined;
      if (refusal === undefined)
        logger.error({ event: 'gateway.error', route: req.routeOptions.url, code: err.code }, 'gateway error');
      const answer = refusal === undefined ? internalError() : refusalOf(refusal);
      let caller: Caller | undefined;
      try {
        caller = await verifyBearer(req.headers.authorization, {
          signer: opts.signer,
          baseUrl: opts.baseUrl(),
          partners: opts.partners,
          now: opts.now(),
          certificate: presentedCertificate(req.raw.socket),
        });
      } catch {
        caller = undefined;
      }
      const url = req.routeOptions.url ?? '';
      await audit({
        kind: 'partner-request',
        address: req.ip,
        ...(caller === undefined
          ? {}
          : { service: caller.service.id, clientId: caller.partner.clientId, tokenId: caller.tokenId }),
        interaction: url === '/' ? 'batch' : url.startsWith('/$') ? 'process-message' : 'create',
        status: answer.status,
        messageIds: [],
        ...(answer.code === undefined ? {} : { code: answer.code }),
        ...(answer.path === undefined ? {} : { path: answer.path }),
      });
      return reply.code(answer.status).headers(answer.headers).header('content-type', FHIR_JSON).send(answer.body);
    });
    scope.post('/$process-message', handler('message'));
    scope.post('/', handler('bundle'));
    scope.post('/:type', handler('create'));
  });
}

/** The request's MessageHeader (first entry): its id (the response names it) and its event, code only. */
function headerOf(bundle: Record<string, unknown>): {
  readonly id: string;
  readonly event: Pick<MessageHeader, 'eventCoding' | 'eventUri'>;
} {
  const first = Array.isArray(bundle['entry']) ? (bundle['entry'] as unknown[])[0] : undefined;
  const header = isObject(first) ? first['resource'] : undefined;
  if (!isObject(header) || header['resourceType'] !== 'MessageHeader')
    throw new InboundError(
      400,
      'invalid',
      'E_PARTNER_REQUEST',
      'Bundle.entry[0].resource',
      'expected a MessageHeader first',
    );
  const id = header['id'];
  if (typeof id !== 'string' || !/^[A-Za-z0-9\-.]{1,64}$/.test(id))
    throw new InboundError(
      400,
      'invalid',
      'E_PARTNER_REQUEST',
      'Bundle.entry[0].resource.id',
      'expected the MessageHeader id',
    );
  const coding = header['eventCoding'];
  const uri = header['eventUri'];
  // Only the event's system and code go back (never a display text the partner wrote).
  const event: Pick<MessageHeader, 'eventCoding' | 'eventUri'> =
    isObject(coding) && typeof coding['code'] === 'string' && /^[^\s]{1,64}$/.test(coding['code'])
      ? {
          eventCoding: {
            ...(typeof coding['system'] === 'string' && /^[^\s]{1,256}$/.test(coding['system'])
              ? { system: coding['system'] }
              : {}),
            code: coding['code'],
          },
        }
      : typeof uri === 'string' && /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]{1,256}$/.test(uri)
        ? { eventUri: uri }
        : { eventUri: 'urn:phi-broker:event:unknown' };
  return { id, event };
}

function refusalOf(err: InboundError): Answer {
  const issues = (err as InboundError & { issues?: OperationOutcomeIssue[] }).issues ?? [
    issue('error', err.issueCode, err.message, err.code, err.path),
  ];
  const headers: Record<string, string> = {};
  // RFC 6750 §3: the challenge of a refused bearer token, or of a token without the scope.
  if (err.status === 401) headers['www-authenticate'] = 'Bearer error="invalid_token"';
  if (err.status === 403 && err.code === 'E_PARTNER_SCOPE')
    headers['www-authenticate'] = 'Bearer error="insufficient_scope"';
  if (err.status === 409 || err.status === 503) headers['retry-after'] = '1';
  return {
    status: err.status,
    headers,
    body: outcome(...issues),
    messageIds: [],
    code: err.code,
    ...(err.path === undefined ? {} : { path: err.path }),
  };
}

function internalError(): Answer {
  return {
    status: 500,
    headers: {},
    body: outcome(issue('error', 'exception', 'internal error', 'E_INTERNAL')),
    messageIds: [],
    code: 'E_INTERNAL',
  };
}
