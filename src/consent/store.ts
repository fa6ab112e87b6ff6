// Patient restrictions in JetStream KV `phi_consent` (NATS ADR-8): key `<patient pseudonym>.<consent id>` — the
// broker's keyed pseudonym (src/registry/pseudonym.ts) of the patient in the catalog's canonical form
// (src/registry/patient-key.ts), the same pseudonym the broker computes for every resource about that patient,
// never a raw identifier — value the sealed Consent (sealed.ts). Revoking rewrites the Consent as `inactive` with compare-and-set on the KV revision (the update
// fails if anyone changed it in between), so the bucket's history keeps every state as evidence.
import { randomUUID } from 'node:crypto';
import type { Consent } from 'fhir/r4.js';
import type { KV, NatsConnection } from 'nats';
import type { BrokerSecrets } from '../crypto/broker-secrets.js';
import type { PatientMatchDef } from '../catalog/types.js';
import { BrokerError } from '../wire/errors.js';
import { SINGLE_NODE_REPLICAS, ensureConsentBucket, type Replicas } from '../nats/setup.js';
import { canonicalPatientRef } from '../registry/patient-key.js';
import { patientPseudonym } from '../registry/pseudonym.js';
import {
  buildConsent,
  checkConsent,
  consentPatient,
  isConsentId,
  revokedConsent,
  type RestrictionRequest,
} from './consent.js';
import { consentStoreKey, openConsentValue, sealConsentValue } from './sealed.js';

export interface StoredConsent {
  readonly consent: Consent;
  /** KV revision of this state (the stream sequence): brokers have applied it once their view reaches it. */
  readonly revision: number;
}

export type NewRestriction = Omit<RestrictionRequest, 'id' | 'at'>;

/** What the store needs of the catalog: the services a restriction may name and the patient matching rule. */
export interface ConsentCatalog {
  readonly services: Iterable<string>;
  readonly patients: PatientMatchDef;
}

export class ConsentStore {
  private constructor(
    private readonly kv: KV,
    private readonly secrets: BrokerSecrets,
    private readonly key: Uint8Array,
    private readonly services: ReadonlySet<string>,
    private readonly rule: PatientMatchDef,
    private readonly now: () => number,
  ) {}

  static async open(
    nc: NatsConnection,
    secrets: BrokerSecrets,
    catalog: ConsentCatalog,
    now: () => number = Date.now,
    replicas: Replicas = SINGLE_NODE_REPLICAS,
  ): Promise<ConsentStore> {
    return new ConsentStore(
      await ensureConsentBucket(nc, replicas),
      secrets,
      consentStoreKey(secrets),
      new Set(catalog.services),
      catalog.patients,
      now,
    );
  }

  /**
   * Checks, builds and stores an active restriction: E_CONSENT_INVALID names the option at fault,
   * E_PATIENT_UNRESOLVED a patient not in the catalog rule's canonical form.
   */
  async add(req: NewRestriction): Promise<StoredConsent> {
    const consent = buildConsent({ ...req, id: randomUUID(), at: this.now() }, this.services, this.rule);
    // Keyed by the patient the Consent itself resolves to: the one the broker's view checks deliveries against.
    const kvKey = `${patientPseudonym(this.secrets, consentPatient(consent, this.rule))}.${consent.id ?? ''}`;
    const revision = await this.kv.create(kvKey, sealConsentValue(this.key, kvKey, consent));
    return { consent, revision };
  }

  /** Every restriction recorded for the patient, active or not, oldest first. */
  async list(patient: string): Promise<StoredConsent[]> {
    const prefix = patientPseudonym(this.secrets, canonicalPatientRef(patient, this.rule));
    const out: StoredConsent[] = [];
    for (const kvKey of await this.keys(`${prefix}.*`)) {
      const stored = await this.read(kvKey);
      if (stored !== undefined) out.push(stored);
    }
    return out.sort((a, b) => a.revision - b.revision);
  }

  /** Sets the restriction `inactive`; `changed` is false when it already was. E_CONSENT_UNKNOWN for an unknown id. */
  async revoke(id: string): Promise<StoredConsent & { readonly changed: boolean }> {
    const unknown = new BrokerError(
      'E_CONSENT_UNKNOWN',
      `no restriction with id ${isConsentId(id) ? id : '(not a consent id)'}`,
    );
    if (!isConsentId(id)) throw unknown;
    const [kvKey] = await this.keys(`*.${id}`);
    const stored = kvKey === undefined ? undefined : await this.read(kvKey);
    if (kvKey === undefined || stored === undefined) throw unknown;
    if (stored.consent.status !== 'active') return { ...stored, changed: false };
    const consent = revokedConsent(stored.consent, this.now());
    const revision = await this.kv.update(kvKey, sealConsentValue(this.key, kvKey, consent), stored.revision);
    return { consent, revision, changed: true };
  }

  private async keys(filter: string): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.kv.keys(filter)) out.push(k);
    return out;
  }

  private async read(kvKey: string): Promise<StoredConsent | undefined> {
    const e = await this.kv.get(kvKey);
    if (e === null || e.operation !== 'PUT') return undefined;
    return { consent: checkConsent(openConsentValue(this.key, kvKey, e.value), this.rule), revision: e.revision };
  }
}
