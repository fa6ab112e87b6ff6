// The broker side of the right of access (45 CFR 164.524), run by every broker process: creates a request for
// a patient, looks the patient up in the registry, asks each service that holds the patient's data in the
// designated record set (catalog classification `phi`, inside the covered entity: not de-identified consumers
// or external partners) over NATS request/reply, verifies and stores each answer sealed, and keeps per-service
// state; unanswered or incompletely answered services are asked again with backoff (retryDue, on a timer or on
// command), a service whose answer fails the check only on the operator's `access retry <id>` (reopen). Every step is
// logged with ids and codes only (access.*). State changes are compare-and-set (store.ts), and an attempt is
// claimed before it is made, so several broker processes never ask twice for the same attempt.
import { randomUUID } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection, type Subscription } from 'nats';
import type { BrokerSecrets } from '../../crypto/broker-secrets.js';
import type { Catalog } from '../../catalog/types.js';
import { openBlob } from '../../crypto/aead.js';
import { Keyring } from '../../crypto/keyring.js';
import type { PublicKeyRecord, ServiceKeys } from '../../crypto/keys.js';
import type { AccessStepFact, AuditFact } from '../../audit/facts.js';
import { isBrokerError } from '../../wire/errors.js';
import { DEFAULT_VALIDATION_LIMITS } from '../../fhir/limits.js';
import { errorFields, type Logger } from '../../log/log.js';
import { BROKER_QUEUE, HEADERS, KV_BUCKETS, replies, subjects } from '../../wire/names.js';
import { canonicalPatientRef } from '../../registry/patient-key.js';
import { patientPseudonym } from '../../registry/pseudonym.js';
import { RegistryStore } from '../../registry/store.js';
import { CONTROL_REF_AAD, controlCommandSchema, type ControlReply } from './control.js';
import { checkAnswer, verifyAnswer, type AuthenticAnswer } from './answer.js';
import { fetchParts } from './fetch-parts.js';
import { openManifest } from '../protocol/parts.js';
import { sealQuestion } from '../protocol/holder-exchange.js';
import {
  claimAttempt,
  dueServices,
  extendRequest,
  isOverdue,
  newRequest,
  recordAnswer,
  recordMiss,
  recordRefusal,
  reopen,
  type AccessRequest,
} from '../protocol/request.js';
import { deliveredProfiles, pseudonymousPatientRef } from './patient-forms.js';
import { typesCovered } from './types-covered.js';
import { accessKey, answerHash, checkRequestId, openPatientRef, sealAnswer, sealPatientRef } from './sealing.js';
import { serveServiceRequests } from './service-requests.js';
import { AccessStore } from './store.js';
import type { Replicas } from '../../nats/setup.js';
import { requestOn, replyNonce } from '../../nats/request.js';
import { decodeJson } from '../../wire/decode-json.js';
import { stringifyJson } from '../../wire/json.js';

export interface AccessDeskOptions {
  readonly nc: NatsConnection;
  readonly catalog: Catalog;
  /** The broker's own key pair(s). */
  readonly keys: ServiceKeys;
  readonly peers: readonly PublicKeyRecord[];
  readonly secrets: BrokerSecrets;
  readonly logger: Logger;
  readonly now?: () => number;
  /** How long one service has to answer one question. */
  readonly answerTimeoutMs?: number;
  /** How often this process looks for due retries; 0: only on command (`retryDue`, `access retry`). */
  readonly retryIntervalMs?: number;
  /** The largest answer (sealed bytes) a service may send in parts; larger is refused E_TOO_LARGE. Default 256 MiB. */
  readonly maxAnswerBytes?: number;
  /** The broker's audit trail (src/audit/trail.ts): every step is recorded as a FHIR AuditEvent before it is reported. */
  readonly audit?: { record(facts: readonly AuditFact[]): Promise<void> };
  /** How far a service's access request (SDK) may be timestamped from this clock (config clockSkewMs; default 5 min). */
  readonly clockSkewMs?: number;
  /** Copies of phi_access, phi_access_answers and phi_registry if this process creates them (config replicas; default 1). */
  readonly replicas?: Replicas;
}

/** Default bound on one service's sealed answer: the broker holds it in memory while checking it. */
export const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

export class AccessDesk {
  private readonly keyring: Keyring;
  private readonly key: Uint8Array;
  private readonly now: () => number;
  private control: Subscription | undefined;
  private serviceRequests: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly profilesOf = new Map<string, ReadonlyMap<string, ReadonlySet<string>>>();

  private constructor(
    private readonly opts: AccessDeskOptions,
    readonly store: AccessStore,
    private readonly registry: RegistryStore,
  ) {
    this.keyring = new Keyring(opts.keys, [...opts.peers]);
    this.key = accessKey(opts.secrets);
    this.now = opts.now ?? Date.now;
  }

  static async start(opts: AccessDeskOptions): Promise<AccessDesk> {
    const desk = new AccessDesk(
      opts,
      await AccessStore.open(opts.nc, opts.replicas),
      await RegistryStore.open(opts.nc, opts.replicas),
    );
    desk.control = opts.nc.subscribe(subjects.accessControl, {
      queue: BROKER_QUEUE,
      callback: (err, msg) => {
        if (err !== null) return;
        const p = desk
          .handleControl(msg.data)
          .then((reply) => msg.respond(new TextEncoder().encode(JSON.stringify(reply))));
        desk.track(p);
      },
    });
    // Requests from the catalog's access requesters through the SDK (service-requests.ts): the same create() below.
    desk.serviceRequests = serveServiceRequests({
      nc: opts.nc,
      catalog: opts.catalog,
      keyring: desk.keyring,
      signer: opts.keys.sign,
      now: desk.now,
      clockSkewMs: opts.clockSkewMs ?? 5 * 60_000,
      logger: opts.logger,
      ...(opts.audit === undefined ? {} : { audit: opts.audit }),
      create: (patient, requester) => desk.create(patient, requester),
      get: (id) => desk.store.get(id),
      track: (p) => desk.track(p),
      // The broker's replay bucket (src/nats/setup.ts creates it, with its TTL): bound, never created or changed here.
      seen: await opts.nc.jetstream().views.kv(KV_BUCKETS.seen, { bindOnly: true }),
    });
    const interval = opts.retryIntervalMs ?? 30_000;
    if (interval > 0) desk.timer = setInterval(() => desk.track(desk.retryDue()), interval);
    await opts.nc.flush();
    return desk;
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.control?.unsubscribe();
    this.serviceRequests?.unsubscribe();
    await Promise.allSettled([...this.inflight]);
  }

  /** Records one step in the audit trail (when the desk runs beside a broker, as `up` runs it). */
  private async audited(fact: Omit<AccessStepFact, 'kind'>): Promise<void> {
    await this.opts.audit?.record([{ kind: 'access', ...fact }]);
  }

  private track(p: Promise<unknown>): void {
    const t = p
      .catch((err: unknown) =>
        this.opts.logger.error({ event: 'access.step.failed', ...errorFields(err) }, 'access desk step failed'),
      )
      .finally(() => this.inflight.delete(t));
    this.inflight.add(t);
  }

  /**
   * Creates a request for the patient (canonical form of the catalog's rule) and asks every holding service once.
   * `requester`: the catalog access requester that filed it through the SDK (absent for an operator's command).
   */
  async create(patient: string, requester?: string): Promise<AccessRequest> {
    const ref = canonicalPatientRef(patient, this.opts.catalog.patients);
    const pseudonym = patientPseudonym(this.opts.secrets, ref);
    const record = await this.registry.get(pseudonym);
    const holders = Object.keys(record?.services ?? {}).filter((s) => this.inDesignatedRecordSet(s));
    // What each holder should answer with: every type it published or received about the patient.
    const holds = Object.fromEntries(
      holders.map((s) => {
        const r = record?.services[s];
        return [s, [...new Set([...(r?.source?.types ?? []), ...(r?.recipient?.types ?? [])])].sort()];
      }),
    );
    const id = `ar-${randomUUID()}`;
    const request = newRequest({
      id,
      patient: pseudonym,
      sealedRef: sealPatientRef(this.key, id, ref),
      services: holders,
      now: this.now(),
      holds,
      ...(requester === undefined ? {} : { requester }),
    });
    await this.store.create(request);
    await this.audited({
      step: 'created',
      requestId: id,
      patientPseudonym: pseudonym,
      services: holders,
      ...(requester === undefined ? {} : { requester }),
    });
    this.opts.logger.info(
      { event: 'access.created', request: id, services: holders, ...(requester === undefined ? {} : { requester }) },
      'access request created',
    );
    await Promise.all(holders.map((s) => this.ask(id, s)));
    return this.store.get(id);
  }

  /** A service whose records about a patient are part of the covered entity's designated record set (164.501). */
  private inDesignatedRecordSet(service: string): boolean {
    const def = this.opts.catalog.services.get(service);
    return def !== undefined && def.classification === 'phi' && !def.external;
  }

  /** Asks every service whose next attempt is due, in every request not complete. */
  async retryDue(): Promise<AccessRequest[]> {
    const now = this.now();
    const touched: AccessRequest[] = [];
    for (const r of await this.store.list()) {
      const due = r.status === 'complete' ? [] : dueServices(r, now);
      if (due.length === 0) continue;
      await Promise.all(due.map((s) => this.ask(r.id, s)));
      touched.push(await this.store.get(r.id));
    }
    return touched;
  }

  /** The operator's `access retry <id>`: asks now every service of the request not answered in full, refused ones too. */
  async reopen(id: string): Promise<AccessRequest> {
    const { request } = await this.store.update(checkRequestId(id), (r) => reopen(r, this.now()));
    const now = this.now();
    await Promise.all(dueServices(request, now).map((s) => this.ask(request.id, s)));
    return this.store.get(request.id);
  }

  private deliveredProfilesOf(service: string): ReadonlyMap<string, ReadonlySet<string>> {
    let p = this.profilesOf.get(service);
    if (p === undefined) this.profilesOf.set(service, (p = deliveredProfiles(this.opts.catalog, service)));
    return p;
  }

  async extend(id: string, reason: string): Promise<AccessRequest> {
    const { request } = await this.store.update(checkRequestId(id), (r) => extendRequest(r, reason, this.now()));
    // The written reason stays in the request (it is told to the individual); the trail records the new due date.
    await this.audited({
      step: 'extended',
      requestId: id,
      patientPseudonym: request.patient,
      services: [],
      detail: `due ${new Date(request.dueAt).toISOString()}`,
    });
    this.opts.logger.info(
      { event: 'access.extended', request: id, due: new Date(request.dueAt).toISOString() },
      'access request extended',
    );
    return request;
  }

  async list(overdue: boolean): Promise<AccessRequest[]> {
    const now = this.now();
    return (await this.store.list()).filter((r) => !overdue || isOverdue(r, now));
  }

  /** One attempt at one service: claimed by compare-and-set first, so no two brokers make the same attempt. */
  private async ask(id: string, service: string): Promise<void> {
    const log = this.opts.logger;
    const now = this.now();
    const { request, changed } = await this.store.update(id, (r) =>
      dueServices(r, now).includes(service) ? claimAttempt(r, service, now) : r,
    );
    const state = request.services[service];
    if (!changed || state === undefined) return;
    const patientRef = openPatientRef(this.key, id, request.sealedRef);
    const rule = this.opts.catalog.patients;
    const patientPseudonym = pseudonymousPatientRef(patientRef, rule, this.opts.secrets.pseudonymKey, service);
    const question = sealQuestion({
      requestId: id,
      service,
      attempt: state.attempts,
      patientRef,
      patientPseudonym,
      now,
      signer: this.opts.keys.sign,
      keyring: this.keyring,
    });
    const h = natsHeaders();
    h.set(HEADERS.signature, question.sig);
    const timeout = this.opts.answerTimeoutMs ?? 10_000;
    let reply;
    try {
      reply = await requestOn(
        this.opts.nc,
        subjects.access(service),
        question.bytes,
        replies.accessAnswer(service, replyNonce()),
        { timeout, headers: h },
      );
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? 'ERROR');
      await this.store.update(id, (r) => recordMiss(r, service, { failed: false, code }));
      await this.audited({
        step: 'unanswered',
        requestId: id,
        patientPseudonym: request.patient,
        services: [service],
        detail: code,
      });
      log.warn(
        { event: 'access.unanswered', request: id, service, attempt: state.attempts, natsCode: code },
        'service did not answer; will retry',
      );
      return;
    }
    // Getting the service's authentic answer (parts fetched, signature, sender, question, decryption): a failure is
    // asked again with backoff (bytes that are not its answer say nothing about the service). Then checking what it
    // answered: a failure is a coded refusal, not asked again until the operator's `access retry <id>`.
    let authentic: AuthenticAnswer | undefined;
    let opened;
    try {
      // An answer larger than one message comes as a manifest (Phi-Parts), its parts fetched one by one (parts.ts).
      let answer = { bytes: reply.data, sig: reply.headers?.get(HEADERS.signature) || undefined };
      if (reply.headers?.has(HEADERS.parts) === true) {
        const manifest = openManifest(reply.data, answer.sig, this.keyring, {
          questionId: question.id,
          service,
          maxBytes: this.opts.maxAnswerBytes ?? MAX_ANSWER_BYTES,
        });
        log.debug(
          {
            event: 'access.parts',
            request: id,
            service,
            attempt: state.attempts,
            parts: manifest.parts,
            bytes: manifest.bytes,
          },
          'fetching an answer sent in parts',
        );
        answer = await fetchParts(this.opts.nc, service, manifest, this.keyring, timeout);
      }
      authentic = verifyAnswer(answer.bytes, answer.sig, this.keyring, { questionId: question.id, service });
      opened = checkAnswer(
        authentic,
        {
          questionId: question.id,
          service,
          patientRef,
          rule,
          pseudonymousRef: patientPseudonym,
          deliveredProfiles: this.deliveredProfilesOf(service),
        },
        DEFAULT_VALIDATION_LIMITS,
      );
    } catch (err) {
      const code = isBrokerError(err) ? err.code : 'E_INTERNAL';
      const path = isBrokerError(err) ? err.path : undefined;
      const refused = authentic !== undefined && isBrokerError(err);
      await this.store.update(id, (r) =>
        refused
          ? recordRefusal(r, service, { at: this.now(), code, path })
          : recordMiss(r, service, { failed: true, code, path }),
      );
      // An answer with a resource about another patient (E_ACCESS_OTHER_PATIENT) or none that resolves is refused
      // whole: nothing of it is stored, so none of it can reach the Bundle; the request stays partial, naming it.
      await this.audited({
        step: 'failed',
        requestId: id,
        patientPseudonym: request.patient,
        services: [service],
        detail: `${path === undefined ? code : `${code} at ${path}`}${refused ? '; refused, not asked again until access retry' : ''}`,
      });
      log.warn(
        {
          event: refused ? 'access.refused' : 'access.failed',
          request: id,
          service,
          attempt: state.attempts,
          ...errorFields(err),
        },
        refused ? 'refused an answer; not asked again until access retry <id>' : 'could not get an answer; will retry',
      );
      return;
    }
    if (!opened.ok) {
      await this.store.update(id, (r) => recordMiss(r, service, { failed: true, code: opened.code }));
      await this.audited({
        step: 'failed',
        requestId: id,
        patientPseudonym: request.patient,
        services: [service],
        detail: opened.code,
      });
      log.warn(
        { event: 'access.failed', request: id, service, attempt: state.attempts, code: opened.code },
        'service could not answer; will retry',
      );
      return;
    }
    const json = stringifyJson(opened.resources);
    const types: Record<string, number> = {};
    for (const r of opened.resources) types[r.resourceType] = (types[r.resourceType] ?? 0) + 1;
    await this.store.putAnswer(id, service, sealAnswer(this.key, id, service, json));
    const sha256 = answerHash(json);
    const after = await this.store.update(id, (r) =>
      recordAnswer(r, service, {
        at: this.now(),
        resources: opened.resources.length,
        types,
        sha256,
        covers: typesCovered(opened.resources),
      }),
    );
    const stateAfter = after.request.services[service];
    const missing = stateAfter?.state === 'incomplete' ? stateAfter.missing : [];
    await this.audited({
      step: 'answered',
      requestId: id,
      patientPseudonym: request.patient,
      services: [service],
      resources: opened.resources.length,
      sha256,
      detail: `${missing.length === 0 ? '' : `incomplete: no ${missing.join(', ')}; `}request ${after.request.status}`,
    });
    const fields = {
      event: missing.length === 0 ? 'access.answered' : 'access.incomplete',
      request: id,
      service,
      attempt: state.attempts,
      resources: opened.resources.length,
      sha256,
      status: after.request.status,
      ...(missing.length === 0 ? {} : { missing }),
    };
    if (missing.length === 0) log.info(fields, 'service answered');
    else log.warn(fields, 'service answered without types the registry says it holds; will ask again');
  }

  private async handleControl(data: Uint8Array): Promise<ControlReply> {
    try {
      const cmd = decodeJson(data, controlCommandSchema, { what: 'access command', code: 'E_ENVELOPE_INVALID' });
      const now = this.now();
      switch (cmd.op) {
        case 'create': {
          const ref = new TextDecoder().decode(
            openBlob(
              this.key,
              new Uint8Array(Buffer.from(cmd.sealedRef, 'base64url')),
              new TextEncoder().encode(CONTROL_REF_AAD),
              'sealedRef',
            ),
          );
          return { ok: true, requests: [await this.create(ref)], now };
        }
        case 'status':
          return { ok: true, requests: [await this.store.get(checkRequestId(cmd.id))], now };
        case 'extend':
          return { ok: true, requests: [await this.extend(cmd.id, cmd.reason)], now };
        case 'list':
          return { ok: true, requests: await this.list(cmd.overdue === true), now };
        case 'retry':
          return {
            ok: true,
            requests: cmd.id === undefined ? await this.retryDue() : [await this.reopen(cmd.id)],
            now,
          };
      }
    } catch (err) {
      if (isBrokerError(err)) return { ok: false, error: err.toJSON() };
      this.opts.logger.error({ event: 'access.control.failed', ...errorFields(err) }, 'access command failed');
      return {
        ok: false,
        error: { code: 'E_INTERNAL', message: 'the broker could not carry out this access command' },
      };
    }
  }
}
