// The broker's decisions as audit facts: small pure adapters from what the pipeline produced (src/broker/
// pipeline.ts) to AuditFact values, so the hooks in broker.ts stay one line each.
import type { CheckedEnvelope, Routed } from './pipeline.js';
import type { Catalog } from '../catalog/types.js';
import type { BrokerError } from '../wire/errors.js';
import type { AuditFact, AuditSubject } from '../audit/facts.js';

/** Profile URL → its allow-list of element paths (what a delivery through it may carry). */
export function profileElements(catalog: Catalog): (profileUrl: string) => readonly string[] {
  const byUrl = new Map([...catalog.profiles.values()].map((p) => [p.url, p.allow]));
  return (url) => byUrl.get(url) ?? [];
}

/** broker-start, then the catalog the broker runs with (its hash pins every route and profile). */
export function startFacts(catalog: Catalog): AuditFact[] {
  return [
    { kind: 'broker-start' },
    { kind: 'catalog-loaded', hash: catalog.hash, services: catalog.services.size, types: catalog.topics.size },
  ];
}

/**
 * The message's subject, as pseudonyms only: its patients' as the pipeline computed them (Routed.patients, the
 * registry's keys: no second HMAC), and `<Type>/<id>` through `pseudonymOf` (the same broker pseudonym,
 * src/registry/pseudonym.ts) — never for a Patient, whose id is the patient's.
 */
export function auditSubject(
  checked: CheckedEnvelope,
  routed: Routed,
  pseudonymOf: (ref: string) => string,
): AuditSubject {
  const { pseudonym, pseudonyms } = routed.patients;
  const id = checked.type === 'Patient' ? undefined : routed.resourceId;
  return {
    messageId: checked.env.id,
    resourceType: checked.type,
    ...(id === undefined ? {} : { resourcePseudonym: pseudonymOf(`${checked.type}/${id}`) }),
    ...(pseudonym === undefined ? {} : { patientPseudonym: pseudonym }),
    ...(pseudonyms.length === 0 ? {} : { patientPseudonyms: pseudonyms }),
  };
}

/**
 * accepted, then one delivered per stored delivery and one withheld per subscriber denied its copy (profile, size or
 * restriction). `pseudonymOf` is the broker's keyed pseudonym (for the resource's id; see auditSubject).
 */
export function acceptedFacts(
  checked: CheckedEnvelope,
  ingestSeq: number,
  routed: Routed,
  elementsOf: (profileUrl: string) => readonly string[],
  signerKid: string,
  pseudonymOf: (ref: string) => string,
): AuditFact[] {
  const sender = { service: checked.sender };
  const subject = auditSubject(checked, routed, pseudonymOf);
  return [
    { kind: 'accepted', sender, subject, ingestSeq, keys: { verified: checked.env.kid, unwrapped: routed.unwrapKek } },
    ...routed.deliveries.map((d): AuditFact => ({
      kind: 'delivered',
      sender,
      recipient: { service: d.service },
      subject,
      profileUrl: d.profileUrl,
      purpose: d.purpose,
      elements: elementsOf(d.profileUrl),
      deliveryId: d.msgId,
      keys: { released: d.kek, signed: signerKid },
    })),
    ...routed.withheld.map((w): AuditFact => ({
      kind: 'withheld',
      sender,
      recipient: { service: w.service },
      subject,
      code: w.error.code,
      ...(w.error.path === undefined ? {} : { path: w.error.path }),
    })),
    // A patient restriction (45 CFR 164.522) kept: the copy was never made; the deciding Consent is named.
    ...routed.restricted.map((r): AuditFact => ({
      kind: 'withheld',
      sender,
      recipient: { service: r.service },
      subject,
      code: `restricted:${r.denial.reason}${r.denial.code === undefined ? '' : `:${r.denial.code}`}`,
      purpose: r.purpose,
      consent: r.denial.consent,
    })),
  ];
}

export interface RejectionContext {
  readonly sender: string | undefined;
  readonly type: string | undefined;
  readonly messageId: string | undefined;
  /** The record kept in PHI_QUARANTINE; undefined when none could be (E_QUARANTINE_FULL). */
  readonly quarantineId: string | undefined;
  readonly ingestSeq: number;
}

/** rejected (with code and path), then quarantined (the record kept in PHI_QUARANTINE), when one was. */
export function rejectedFacts(error: BrokerError, r: RejectionContext): AuditFact[] {
  const sender = r.sender === undefined ? {} : { sender: { service: r.sender } };
  const messageId = r.messageId === undefined ? {} : { messageId: r.messageId };
  const rejected: AuditFact = {
    kind: 'rejected',
    ...sender,
    ...messageId,
    ...(r.type === undefined ? {} : { resourceType: r.type }),
    code: error.code,
    ...(error.path === undefined ? {} : { path: error.path }),
    ingestSeq: r.ingestSeq,
  };
  if (r.quarantineId === undefined) return [rejected];
  return [
    rejected,
    {
      kind: 'quarantined',
      recordId: r.quarantineId,
      code: error.code,
      ...sender,
      ...messageId,
      ingestSeq: r.ingestSeq,
    },
  ];
}
