// The broker's registry hook (DESIGN.md data flow: "registry: patient ↔ services", before the ingest ack).
// `plan` runs before any delivery is published: it takes the patients the pipeline resolved once for the message
// under the catalog's rule (message-patients.ts). When the catalog rejects unresolved patients, routeMessage has
// already refused such a message (E_PATIENT_UNRESOLVED, refuseUnresolved) before sealing any copy; the plan states
// the same rule, so it never records what the catalog refuses.
// A Bundle that travels whole is planned entry by entry (bundle-patients.ts): each entry's patient gets its own
// record, with the resource types of the entries about that patient (never the Bundle as a whole), and an entry
// whose patient does not resolve follows the catalog's `unresolved` rule like any resource.
// `persist` runs after the deliveries are stored and before the ack: it records the sender and every
// recipient against each planned patient's keyed pseudonym (never the reference itself), one compare-and-set
// update per patient. A resource of a type outside the Patient compartment is about no patient and is not
// registered; one whose patient does not resolve is counted under UNRESOLVED_KEY and logged — never silently
// left out.
import type { NatsConnection } from 'nats';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';
import type { PatientMatchDef } from '../catalog/types.js';
import type { Logger } from '../log/log.js';
import { SINGLE_NODE_REPLICAS, type Replicas } from '../nats/setup.js';
import { refuseUnresolved, type MessagePatients } from './message-patients.js';
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
 * The pure planning step: one record per patient the message is about (for a Bundle, per entry), keyed by the
 * pseudonym message-patients.ts computed once for the message, with the types of the parts about that patient;
 * unresolved parts under UNRESOLVED_KEY, or E_PATIENT_UNRESOLVED (naming the entry of a Bundle) when the catalog
 * rejects them.
 */
export function planRegistration(
  message: { readonly messageId: string; readonly sender: string; readonly type: string },
  patients: MessagePatients,
  rule: PatientMatchDef,
): Registration {
  refuseUnresolved(patients, rule);
  const byKey = new Map<string, Set<string>>();
  for (const part of patients.parts) {
    const p = part.patient;
    if (p.kind === 'none') continue;
    let key = UNRESOLVED_KEY;
    if (p.kind === 'patient') {
      if (p.pseudonym === undefined)
        throw new TypeError('planRegistration: the message patients were resolved without a pseudonym');
      key = p.pseudonym;
    }
    let types = byKey.get(key);
    if (types === undefined) byKey.set(key, (types = new Set()));
    types.add(part.type);
  }
  const records: { key: string; types: string[] }[] = [];
  for (const [key, types] of byKey) records.push({ key, types: [...types] });
  return { messageId: message.messageId, sender: message.sender, type: message.type, records };
}

export class RegistryRecorder {
  private constructor(
    readonly store: RegistryStore,
    private readonly rule: PatientMatchDef,
    private readonly secrets: Pick<BrokerSecrets, 'pseudonymKey'>,
    private readonly logger: Logger,
  ) {}

  static async open(
    nc: NatsConnection,
    rule: PatientMatchDef,
    secrets: Pick<BrokerSecrets, 'pseudonymKey'>,
    logger: Logger,
    replicas: Replicas = SINGLE_NODE_REPLICAS,
  ): Promise<RegistryRecorder> {
    return new RegistryRecorder(await RegistryStore.open(nc, replicas), rule, secrets, logger);
  }

  /** The catalog's canonical patient rule, for resolving a message's patients once (message-patients.ts). */
  get patientRule(): PatientMatchDef {
    return this.rule;
  }

  /** The broker's pseudonym of a canonical patient reference: the registry key. */
  pseudonymOf(ref: string): string {
    return patientPseudonym(this.secrets, ref);
  }

  /** Throws E_PATIENT_UNRESOLVED when a patient (a Bundle entry's included) does not resolve and the catalog says `unresolved: reject`. */
  plan(
    message: { readonly messageId: string; readonly sender: string; readonly type: string },
    patients: MessagePatients,
  ): Registration {
    return planRegistration(message, patients, this.rule);
  }

  /**
   * Records the sender and the recipients the message is delivered to (the broker writes this beside the
   * deliveries and acknowledges only when both are stored). Any failure is RegistryUnavailable: the message must
   * be retried (never rejected, never acknowledged unrecorded).
   */
  async persist(
    reg: Registration,
    deliveries: readonly { readonly service: string; readonly purpose: string }[],
    at: number,
  ): Promise<void> {
    if (reg.records.length === 0) return;
    // The deliveries themselves are the recipients (service and purpose are all an observation reads of them).
    const recipients = deliveries;
    try {
      // One compare-and-set update per patient; a retried message re-applies them all and each record counts it once.
      await Promise.all(
        reg.records.map((r) =>
          this.store.record(r.key, { messageId: reg.messageId, types: r.types, at, source: reg.sender, recipients }),
        ),
      );
    } catch (err) {
      if (err instanceof RegistryUnavailable) throw err;
      throw new RegistryUnavailable('the registry could not be written', { cause: err });
    }
    if (reg.records.some((r) => r.key === UNRESOLVED_KEY)) {
      this.logger.warn(
        { event: 'registry.unresolved', id: reg.messageId, sender: reg.sender, type: reg.type },
        'no patient resolved; counted under the unresolved record',
      );
    }
  }
}
