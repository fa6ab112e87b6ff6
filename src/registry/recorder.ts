// The broker's registry hook (DESIGN.md data flow: "registry: patient ↔ services", before the ingest ack).
// `plan` runs before any delivery is published: it resolves the patient under the catalog's rule and, when
// the catalog rejects unresolved patients, refuses the message (E_PATIENT_UNRESOLVED) so nothing goes out.
// A Bundle that travels whole is planned entry by entry (bundle-patients.ts): each entry's patient gets its own
// record, with the resource types of the entries about that patient (never the Bundle as a whole), and an entry
// whose patient does not resolve follows the catalog's `unresolved` rule like any resource.
// `persist` runs after the deliveries are stored and before the ack: it records the sender and every
// recipient against each planned patient's keyed pseudonym (never the reference itself), one compare-and-set
// update per patient. A resource of a type outside the Patient compartment is about no patient and is not
// registered; one whose patient does not resolve is counted under UNRESOLVED_KEY and logged — never silently
// left out.
import type { NatsConnection } from 'nats';
import type { BrokerSecrets } from '../broker/secrets.js';
import type { PatientMatchDef } from '../catalog/types.js';
import { BrokerError } from '../errors.js';
import type { FhirResource } from '../fhir/resource.js';
import type { Logger } from '../log.js';
import { patientParts } from './bundle-patients.js';
import { patientPseudonym } from './pseudonym.js';
import { RegistryStore, RegistryUnavailable, UNRESOLVED_KEY } from './store.js';

/** What `plan` decided for one message: a registry key per patient it is about, with the types about that patient (none: nothing to record). */
export interface Registration {
  readonly records: readonly { readonly key: string; readonly types: readonly string[] }[];
  readonly messageId: string;
  readonly sender: string;
  readonly type: string;
}

/**
 * The pure planning step: one record per patient the resource is about (for a Bundle, per entry), keyed by
 * `pseudonymOf` of the canonical reference, with the types of the parts about that patient; unresolved parts under
 * UNRESOLVED_KEY, or E_PATIENT_UNRESOLVED (naming the entry of a Bundle) when the catalog rejects them.
 */
export function planRegistration(
  message: { readonly messageId: string; readonly sender: string; readonly type: string },
  resource: FhirResource,
  rule: PatientMatchDef,
  pseudonymOf: (ref: string) => string,
): Registration {
  const byKey = new Map<string, Set<string>>();
  for (const part of patientParts(resource, rule)) {
    const r = part.resolution;
    if (r.kind === 'none') continue;
    if (r.kind === 'unresolved' && rule.unresolved === 'reject') {
      const inBundle = resource.resourceType === 'Bundle';
      throw new BrokerError('E_PATIENT_UNRESOLVED', `${inBundle ? `${part.path}: ` : ''}no patient resolves under the catalog's matching rule (match ${rule.match})`, inBundle ? { path: part.path } : undefined);
    }
    const key = r.kind === 'patient' ? pseudonymOf(r.ref) : UNRESOLVED_KEY;
    let types = byKey.get(key);
    if (types === undefined) byKey.set(key, (types = new Set()));
    types.add(part.type);
  }
  return { ...message, records: [...byKey].map(([key, types]) => ({ key, types: [...types] })) };
}

export class RegistryRecorder {
  private constructor(
    readonly store: RegistryStore,
    private readonly rule: PatientMatchDef,
    private readonly secrets: Pick<BrokerSecrets, 'pseudonymKey'>,
    private readonly logger: Logger,
  ) {}

  static async open(nc: NatsConnection, rule: PatientMatchDef, secrets: Pick<BrokerSecrets, 'pseudonymKey'>, logger: Logger): Promise<RegistryRecorder> {
    return new RegistryRecorder(await RegistryStore.open(nc), rule, secrets, logger);
  }

  /** Throws E_PATIENT_UNRESOLVED when a patient (a Bundle entry's included) does not resolve and the catalog says `unresolved: reject`. */
  plan(message: { readonly messageId: string; readonly sender: string; readonly type: string }, resource: FhirResource): Registration {
    return planRegistration(message, resource, this.rule, (ref) => patientPseudonym(this.secrets, ref));
  }

  /**
   * Records the sender and the recipients actually delivered to. Any failure is RegistryUnavailable: the
   * deliveries are already out, so the message must be retried (never rejected, never acknowledged unrecorded).
   */
  async persist(reg: Registration, deliveries: readonly { readonly service: string; readonly purpose: string }[], at: number): Promise<void> {
    if (reg.records.length === 0) return;
    const recipients = deliveries.map((d) => ({ service: d.service, purpose: d.purpose }));
    try {
      // One compare-and-set update per patient; a retried message re-applies them all and each record counts it once.
      await Promise.all(reg.records.map((r) => this.store.record(r.key, { messageId: reg.messageId, types: r.types, at, source: reg.sender, recipients })));
    } catch (err) {
      if (err instanceof RegistryUnavailable) throw err;
      throw new RegistryUnavailable('the registry could not be written', { cause: err });
    }
    if (reg.records.some((r) => r.key === UNRESOLVED_KEY)) {
      this.logger.warn({ event: 'registry.unresolved', id: reg.messageId, sender: reg.sender, type: reg.type }, 'no patient resolved; counted under the unresolved record');
    }
  }
}
