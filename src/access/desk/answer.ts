// The broker's check of a service's answer to a right-of-access question (protocol.ts): signed by the service
// asked, answering exactly this question, a FHIR R4 Bundle of type `collection` whose every entry resource is valid
// (validated like any ingest, one resource at a time: a designated record set may be far larger than one resource
// may be; a minimum-necessary copy the broker delivered to that service may lack required elements its profile
// withholds) and about the patient asked (about-patient.ts). Apart from protocol.ts because validation loads the FHIR
// R4 model, which the SDK must not pay for.
import { type PatientMatchDef } from '../../catalog/types.js';
import { BROKER_ID } from '../../wire/ids.js';
import type { Keyring } from '../../crypto/keyring.js';
import { openEnvelope, verifySignedEnvelope } from '../../envelope/open.js';
import { BrokerError, isBrokerError } from '../../wire/errors.js';
import type { ValidationLimits } from '../../fhir/limits.js';
import { isJsonObject, type FhirResource } from '../../fhir/resource.js';
import { validateResource } from '../../fhir/validate.js';
import { checkAboutPatient } from './about-patient.js';

export type OpenedAnswer =
  { readonly ok: true; readonly resources: readonly FhirResource[] } | { readonly ok: false; readonly code: string };

export interface ExpectedAnswer {
  readonly questionId: string;
  readonly service: string;
  /** The patient asked, in the canonical form of `rule` (the catalog's matching rule). */
  readonly patientRef: string;
  readonly rule: PatientMatchDef;
  /** The patient as the broker's copies to this service name it: its keyed pseudonym of `patientRef` (patient-forms.ts). */
  readonly pseudonymousRef?: string;
  /** The profile URLs the broker delivers to this service, by resource type: a resource naming one is a projected copy. */
  readonly deliveredProfiles?: ReadonlyMap<string, ReadonlySet<string>>;
}

/** A minimum-necessary copy the broker delivered to this service: its meta.profile names one of that service's profiles. */
function isProjectedCopy(resource: Record<string, unknown>, expected: ExpectedAnswer): boolean {
  const type = resource['resourceType'];
  const urls = typeof type === 'string' ? expected.deliveredProfiles?.get(type) : undefined;
  const meta = resource['meta'];
  const profiles = isJsonObject(meta) ? meta['profile'] : undefined;
  return urls !== undefined && Array.isArray(profiles) && profiles.some((u) => typeof u === 'string' && urls.has(u));
}

/** Bundle members the SDK's answer may carry besides its entries (protocol.ts sealAnswerEnvelope). */
const BUNDLE_FIELDS = new Set(['resourceType', 'id', 'meta', 'type', 'timestamp', 'total', 'entry']);
const ENTRY_FIELDS = new Set(['resource', 'fullUrl']);

function bundleInvalid(path: string, message: string): BrokerError {
  return new BrokerError('E_ENVELOPE_INVALID', `access answer: ${path}: ${message}`, { path });
}

/** An error from validating entry `i`'s resource, re-pathed under `Bundle.entry[i].resource` (still no values). */
function entryError(err: unknown, i: number, type: string): unknown {
  if (!isBrokerError(err)) return err;
  const at = `Bundle.entry[${i}].resource`;
  const inner =
    err.path === undefined
      ? undefined
      : err.path === type
        ? ''
        : err.path.startsWith(`${type}.`)
          ? err.path.slice(type.length)
          : undefined;
  return new BrokerError(err.code, `${at} (${type}): ${err.message}`, {
    path: inner === undefined ? at : `${at}${inner}`,
  });
}

/** An answer that verified as the service's, opened: its envelope type and its decrypted body. */
export interface AuthenticAnswer {
  readonly typ: string;
  readonly body: unknown;
}

/**
 * First half of the broker's check: the answer must be signed by `service` with one of its keys, answer exactly this
 * question and open with the broker's key. A failure here says the bytes are not that service's answer (forged,
 * damaged, stale): E_SIGNATURE, E_SENDER_MISMATCH, E_ENVELOPE_INVALID, E_KEY_UNKNOWN, E_DECRYPT …
 */
export function verifyAnswer(
  data: Uint8Array,
  sig: string | undefined,
  keyring: Keyring,
  expected: Pick<ExpectedAnswer, 'questionId' | 'service'>,
): AuthenticAnswer {
  const env = verifySignedEnvelope(data, sig, keyring);
  if (env.iss !== expected.service)
    throw new BrokerError('E_SENDER_MISMATCH', 'access answer is not from the service asked', { path: 'iss' });
  if (env.id !== `${expected.questionId}.a`)
    throw new BrokerError('E_ENVELOPE_INVALID', 'access answer does not answer this question', { path: 'id' });
  const wrap = env.keys.find((k) => k.to === BROKER_ID);
  if (wrap === undefined)
    throw new BrokerError('E_KEY_UNKNOWN', 'no data key is wrapped for the broker', { path: 'keys' });
  return { typ: env.typ, body: openEnvelope(env, BROKER_ID, keyring.kekForId(wrap.kek)) };
}

/**
 * Second half: the answer is a collection Bundle of valid R4 resources about the patient asked (projected copies may
 * lack what their profile withholds), or an OperationOutcome. A failure is the answer refused (docs/patient-rights.md).
 */
export function checkAnswer(answer: AuthenticAnswer, expected: ExpectedAnswer, limits: ValidationLimits): OpenedAnswer {
  const opened = answer.body;
  if (answer.typ === 'OperationOutcome') return { ok: false, code: 'SERVICE_ERROR' };
  if (answer.typ !== 'Bundle' || !isJsonObject(opened) || opened['resourceType'] !== 'Bundle')
    throw bundleInvalid('typ', 'expected a Bundle of type collection');
  const extra = Object.keys(opened).find((k) => !BUNDLE_FIELDS.has(k));
  if (extra !== undefined) throw bundleInvalid('Bundle', `only ${[...BUNDLE_FIELDS].join(', ')}`);
  if (opened['type'] !== 'collection') throw bundleInvalid('Bundle.type', 'expected a Bundle of type collection');
  const entry = opened['entry'] ?? [];
  if (!Array.isArray(entry)) throw bundleInvalid('Bundle.entry', 'expected an array');
  const resources = entry.map((e: unknown, i): FhirResource => {
    if (!isJsonObject(e) || !isJsonObject(e['resource']) || Object.keys(e).some((k) => !ENTRY_FIELDS.has(k)))
      throw bundleInvalid(`Bundle.entry[${i}]`, 'expected an entry with a resource');
    const type = typeof e['resource']['resourceType'] === 'string' ? e['resource']['resourceType'] : 'resource';
    try {
      return validateResource(e['resource'], limits, { partial: isProjectedCopy(e['resource'], expected) });
    } catch (err) {
      throw entryError(err, i, type);
    }
  });
  checkAboutPatient(
    resources,
    expected.pseudonymousRef === undefined ? expected.patientRef : [expected.patientRef, expected.pseudonymousRef],
    expected.rule,
  );
  return { ok: true, resources };
}

/** Both halves: verifyAnswer, then checkAnswer. Throws a coded BrokerError when the answer is not acceptable. */
export function openAnswerEnvelope(
  data: Uint8Array,
  sig: string | undefined,
  keyring: Keyring,
  expected: ExpectedAnswer,
  limits: ValidationLimits,
): OpenedAnswer {
  return checkAnswer(verifyAnswer(data, sig, keyring, expected), expected, limits);
}
