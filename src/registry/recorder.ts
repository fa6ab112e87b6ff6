// The broker's registry hook (DESIGN.md data flow: "registry: patient ↔ services", before the ingest ack).
// `plan` runs before any delivery is published: it resolves the patient under the catalog's rule and, when
// the catalog rejects unresolved patients, refuses the message (E_PATIENT_UNRESOLVED) so nothing goes out.
// `persist` runs after the deliveries are stored and before the ack: it records the sender and every
// recipient against the patient's keyed pseudonym (never the reference itself). A resource of a type outside
// the Patient compartment is about no patient and is not registered; one whose patient does not resolve is
// counted under UNRESOLVED_KEY and logged — never silently left out.
import type { NatsConnection } from 'nats';
import type { BrokerSecrets } from '../broker/secrets.js';
import type { PatientMatchDef } from '../catalog/types.js';
import { BrokerError } from '../errors.js';
import type { FhirResource } from '../fhir/resource.js';
import type { Logger } from '../log.js';
import { resolvePatient } from './patient-key.js';
import { patientPseudonym } from './pseudonym.js';
import { RegistryStore, RegistryUnavailable, UNRESOLVED_KEY } from './store.js';

/** What `plan` decided for one message: the registry key, or nothing to record. */
export interface Registration {
  readonly key: string | undefined;
  readonly messageId: string;
  readonly sender: string;
  readonly type: string;
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

  /** Throws E_PATIENT_UNRESOLVED when the patient does not resolve and the catalog says `unresolved: reject`. */
  plan(message: { readonly messageId: string; readonly sender: string; readonly type: string }, resource: FhirResource): Registration {
    const resolved = resolvePatient(resource, this.rule);
    if (resolved.kind === 'none') return { ...message, key: undefined };
    if (resolved.kind === 'patient') return { ...message, key: patientPseudonym(this.secrets, resolved.ref) };
    if (this.rule.unresolved === 'reject') {
      throw new BrokerError('E_PATIENT_UNRESOLVED', `no patient resolves under the catalog's matching rule (match ${this.rule.match})`);
    }
    return { ...message, key: UNRESOLVED_KEY };
  }

  /**
   * Records the sender and the recipients actually delivered to. Any failure is RegistryUnavailable: the
   * deliveries are already out, so the message must be retried (never rejected, never acknowledged unrecorded).
   */
  async persist(reg: Registration, deliveries: readonly { readonly service: string; readonly purpose: string }[], at: number): Promise<void> {
    if (reg.key === undefined) return;
    try {
      await this.store.record(reg.key, {
        messageId: reg.messageId,
        type: reg.type,
        at,
        source: reg.sender,
        recipients: deliveries.map((d) => ({ service: d.service, purpose: d.purpose })),
      });
    } catch (err) {
      if (err instanceof RegistryUnavailable) throw err;
      throw new RegistryUnavailable('the registry could not be written', { cause: err });
    }
    if (reg.key === UNRESOLVED_KEY) {
      this.logger.warn({ event: 'registry.unresolved', id: reg.messageId, sender: reg.sender, type: reg.type }, 'no patient resolved; counted under the unresolved record');
    }
  }
}
