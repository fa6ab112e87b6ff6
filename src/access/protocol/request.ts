// A right-of-access request (45 CFR 164.524) as state, and its transitions — pure. Received → due 30 days later
// (164.524(b)(2)(i)); at most one extension of 30 more days with a written statement of the reasons
// (164.524(b)(2)(ii)); per holding service: pending (not yet answered, retried with backoff), failed (no usable
// answer this time: the service's own error or a transport failure; retried too), refused (its answer failed the
// broker's check: coded, not asked again until the operator's `access retry <id>`), incomplete (it answered without
// a resource type the registry says it holds; retried) or answered. A request is complete only when every service
// the registry named has answered with every type it holds. State machine: docs/patient-rights.md.
// The patient appears only as the registry pseudonym and as a sealed reference (sealing.ts).
import { z } from 'zod';
import { BrokerError } from '../../wire/errors.js';
import { decodeJson } from '../../wire/decode-json.js';

const DAY = 24 * 60 * 60 * 1000;
/** 164.524(b)(2)(i): act on a request no later than 30 days after receipt. */
export const ACCESS_DUE_MS = 30 * DAY;
/** 164.524(b)(2)(ii): one extension of no more than 30 days. */
export const ACCESS_EXTENSION_MS = 30 * DAY;

/** Backoff between attempts to reach one service: 1 min, 2, 4 … capped at 1 hour. */
export function retryDelay(attempts: number): number {
  return Math.min(60_000 * 2 ** Math.max(0, Math.min(attempts - 1, 20)), 60 * 60_000);
}

export type ServiceState =
  | { readonly state: 'pending'; readonly attempts: number; readonly nextAttemptAt: number; readonly code?: string }
  | {
      readonly state: 'failed';
      readonly attempts: number;
      readonly nextAttemptAt: number;
      readonly code: string;
      /** The element path of a refused answer (e.g. `Bundle.entry[3].resource`): never a value. */ readonly path?: string;
    }
  | {
      /** Its answer failed the broker's check (a coded refusal): not asked again until `access retry <id>`. */
      readonly state: 'refused';
      readonly attempts: number;
      readonly refusedAt: number;
      readonly code: string;
      /** The element path the refusal names (e.g. `Bundle.entry[3].resource.status`): never a value. */ readonly path?: string;
    }
  | {
      /** It answered, but without some resource type the registry says it holds: not complete; asked again. */
      readonly state: 'incomplete';
      readonly attempts: number;
      readonly nextAttemptAt: number;
      readonly answeredAt: number;
      readonly resources: number;
      readonly types: Readonly<Record<string, number>>;
      readonly sha256: string;
      readonly missing: readonly string[];
    }
  | {
      readonly state: 'answered';
      readonly attempts: number;
      readonly answeredAt: number;
      readonly resources: number;
      readonly types: Readonly<Record<string, number>>;
      readonly sha256: string;
    };

export type RequestStatus = 'open' | 'partial' | 'complete';

export interface AccessRequest {
  readonly v: 1;
  readonly id: string;
  /** The registry's keyed pseudonym of the patient. */
  readonly patient: string;
  /** The canonical patient reference, sealed (sealing.ts); needed to ask services again on retry. */
  readonly sealedRef: string;
  readonly receivedAt: number;
  /** The due date in force (receivedAt + 30 days, or the extended one). */
  readonly dueAt: number;
  readonly extension?: { readonly at: number; readonly reason: string; readonly previousDueAt: number };
  readonly status: RequestStatus;
  readonly services: Readonly<Record<string, ServiceState>>;
  /** The catalog access requester (a service, through the SDK) that filed it; absent when an operator did (CLI). */
  readonly requester?: string;
  /** Per service, the resource types the registry says it holds (source or recipient) when the request was made. */
  readonly holds?: Readonly<Record<string, readonly string[]>>;
}

const serviceState = z.discriminatedUnion('state', [
  z.strictObject({
    state: z.literal('pending'),
    attempts: z.number().int().min(0),
    nextAttemptAt: z.number(),
    code: z.string().optional(),
  }),
  z.strictObject({
    state: z.literal('failed'),
    attempts: z.number().int().min(0),
    nextAttemptAt: z.number(),
    code: z.string(),
    path: z.string().optional(),
  }),
  z.strictObject({
    state: z.literal('refused'),
    attempts: z.number().int().min(0),
    refusedAt: z.number(),
    code: z.string(),
    path: z.string().optional(),
  }),
  z.strictObject({
    state: z.literal('incomplete'),
    attempts: z.number().int().min(0),
    nextAttemptAt: z.number(),
    answeredAt: z.number(),
    resources: z.number().int().min(0),
    types: z.record(z.string(), z.number().int()),
    sha256: z.string(),
    missing: z.array(z.string()),
  }),
  z.strictObject({
    state: z.literal('answered'),
    attempts: z.number().int().min(0),
    answeredAt: z.number(),
    resources: z.number().int().min(0),
    types: z.record(z.string(), z.number().int()),
    sha256: z.string(),
  }),
]);

/** A stored access request (version 1). */
export const requestSchema = z.strictObject({
  v: z.literal(1),
  id: z.string(),
  patient: z.string(),
  sealedRef: z.string(),
  receivedAt: z.number(),
  dueAt: z.number(),
  extension: z.strictObject({ at: z.number(), reason: z.string(), previousDueAt: z.number() }).optional(),
  status: z.enum(['open', 'partial', 'complete']),
  services: z.record(z.string(), serviceState),
  requester: z.string().optional(),
  holds: z.record(z.string(), z.array(z.string())).optional(),
});

export function newRequest(input: {
  id: string;
  patient: string;
  sealedRef: string;
  services: readonly string[];
  now: number;
  requester?: string;
  /** Per service, the resource types the registry says it holds. */
  holds?: Readonly<Record<string, readonly string[]>>;
}): AccessRequest {
  const services = Object.fromEntries(
    [...input.services]
      .sort()
      .map((s) => [s, { state: 'pending', attempts: 0, nextAttemptAt: input.now } as ServiceState]),
  );
  return withStatus({
    v: 1,
    id: input.id,
    patient: input.patient,
    sealedRef: input.sealedRef,
    receivedAt: input.now,
    dueAt: input.now + ACCESS_DUE_MS,
    status: 'open',
    services,
    ...(input.requester === undefined ? {} : { requester: input.requester }),
    ...(input.holds === undefined ? {} : { holds: input.holds }),
  });
}

/**
 * complete: every service answered with every type it holds (or none holds data); partial: some answered, even if
 * incompletely; open: none yet.
 */
function withStatus(r: AccessRequest): AccessRequest {
  const states = Object.values(r.services);
  const answered = states.filter((s) => s.state === 'answered').length;
  const some = states.some((s) => s.state === 'answered' || s.state === 'incomplete');
  const status: RequestStatus = answered === states.length ? 'complete' : some ? 'partial' : 'open';
  return { ...r, status };
}

/** Services that have not answered in full: what a `partial` or `open` request names. */
export function unanswered(r: AccessRequest): string[] {
  return Object.entries(r.services)
    .filter(([, s]) => s.state !== 'answered')
    .map(([name]) => name);
}

/** Services whose next attempt is due at `now` (a refused one only after the operator's `reopen`). */
export function dueServices(r: AccessRequest, now: number): string[] {
  return Object.entries(r.services)
    .filter(([, s]) => s.state !== 'answered' && s.state !== 'refused' && s.nextAttemptAt <= now)
    .map(([name]) => name);
}

/** Claims the next attempt at `service` (counted now, the one after it due after the backoff), before asking it. */
export function claimAttempt(r: AccessRequest, service: string, now: number): AccessRequest {
  const s = r.services[service];
  if (s === undefined || s.state === 'answered' || s.state === 'refused') return r;
  const attempts = s.attempts + 1;
  const next: ServiceState = { ...s, attempts, nextAttemptAt: now + retryDelay(attempts) };
  return { ...r, services: { ...r.services, [service]: next } };
}

/** The operator's `access retry <id>`: every service not answered in full, refused ones included, is due now. */
export function reopen(r: AccessRequest, now: number): AccessRequest {
  const services: Record<string, ServiceState> = {};
  for (const [name, s] of Object.entries(r.services)) {
    services[name] =
      s.state === 'answered'
        ? s
        : s.state === 'refused'
          ? {
              state: 'failed',
              attempts: s.attempts,
              nextAttemptAt: now,
              code: s.code,
              ...(s.path === undefined ? {} : { path: s.path }),
            }
          : { ...s, nextAttemptAt: now };
  }
  return withStatus({ ...r, services });
}

/**
 * A checked answer: `answered` when it holds every resource type the registry says the service holds, else
 * `incomplete`, naming the missing types (an empty answer from a holder of data is never complete).
 */
export function recordAnswer(
  r: AccessRequest,
  service: string,
  answer: {
    at: number;
    resources: number;
    types: Record<string, number>;
    sha256: string;
    /** Every resource type the answer holds, in nested Bundles' entries too (default: the keys of `types`). */
    covers?: readonly string[];
  },
): AccessRequest {
  const s = r.services[service];
  if (s === undefined) return r;
  const covers = new Set(answer.covers ?? Object.keys(answer.types));
  const missing = (r.holds?.[service] ?? []).filter((t) => !covers.has(t));
  const common = {
    attempts: s.attempts,
    answeredAt: answer.at,
    resources: answer.resources,
    types: answer.types,
    sha256: answer.sha256,
  };
  const next: ServiceState =
    missing.length === 0
      ? { state: 'answered', ...common }
      : {
          state: 'incomplete',
          ...common,
          nextAttemptAt: 'nextAttemptAt' in s ? s.nextAttemptAt : answer.at,
          missing: [...missing].sort(),
        };
  return withStatus({ ...r, services: { ...r.services, [service]: next } });
}

/** An answer refused by the broker's check: coded, with the element path it names; not retried on its own. */
export function recordRefusal(
  r: AccessRequest,
  service: string,
  refusal: { at: number; code: string; path?: string | undefined },
): AccessRequest {
  const s = r.services[service];
  if (s === undefined || s.state === 'answered') return r;
  const next: ServiceState = {
    state: 'refused',
    attempts: s.attempts,
    refusedAt: refusal.at,
    code: refusal.code,
    ...(refusal.path === undefined ? {} : { path: refusal.path }),
  };
  return withStatus({ ...r, services: { ...r.services, [service]: next } });
}

/**
 * An attempt that got no answer (`pending` with the code, e.g. NO_RESPONDERS, TIMEOUT) or a refused one (`failed`:
 * E_SIGNATURE, E_FHIR_INVALID, the service's own error …); both are retried at the time claimAttempt set.
 */
export function recordMiss(
  r: AccessRequest,
  service: string,
  outcome: { failed: boolean; code: string; path?: string | undefined },
): AccessRequest {
  const s = r.services[service];
  // An incomplete answer stays on record (and the request partial) when a later attempt gets nothing better.
  if (s === undefined || s.state === 'answered' || s.state === 'refused' || s.state === 'incomplete') return r;
  const next: ServiceState = outcome.failed
    ? {
        state: 'failed',
        attempts: s.attempts,
        nextAttemptAt: s.nextAttemptAt,
        code: outcome.code,
        ...(outcome.path === undefined ? {} : { path: outcome.path }),
      }
    : { state: 'pending', attempts: s.attempts, nextAttemptAt: s.nextAttemptAt, code: outcome.code };
  return withStatus({ ...r, services: { ...r.services, [service]: next } });
}

/** The single 30-day extension with its written reason; E_ACCESS_EXTENDED when already extended, complete, or no reason. */
export function extendRequest(r: AccessRequest, reason: string, now: number): AccessRequest {
  if (r.extension !== undefined)
    throw new BrokerError(
      'E_ACCESS_EXTENDED',
      'extension: the request was already extended once (45 CFR 164.524(b)(2)(ii))',
      { path: 'extension' },
    );
  if (r.status === 'complete')
    throw new BrokerError('E_ACCESS_EXTENDED', 'extension: the request is complete; there is nothing to extend', {
      path: 'extension',
    });
  if (now > r.dueAt)
    throw new BrokerError(
      'E_ACCESS_EXTENSION_LATE',
      'extension: the due date has passed; an extension must be made within the first 30 days (45 CFR 164.524(b)(2)(ii))',
      { path: 'extension' },
    );
  const text = reason.trim();
  if (text === '')
    throw new BrokerError(
      'E_ACCESS_EXTENDED',
      'reason: a written statement of the reasons for the delay is required (45 CFR 164.524(b)(2)(ii))',
      { path: 'reason' },
    );
  return { ...r, dueAt: r.dueAt + ACCESS_EXTENSION_MS, extension: { at: now, reason: text, previousDueAt: r.dueAt } };
}

export function isOverdue(r: AccessRequest, now: number): boolean {
  return r.status !== 'complete' && now > r.dueAt;
}

export function encodeRequest(r: AccessRequest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(r));
}

/** Parses a stored value; E_JSON_MALFORMED or E_STORED_INVALID (naming the element) when it is not a v1 request. */
export function decodeRequest(bytes: Uint8Array): AccessRequest {
  return decodeJson(bytes, requestSchema, { what: 'access request', code: 'E_STORED_INVALID' }) as AccessRequest;
}
