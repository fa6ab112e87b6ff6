// `phi-broker disclosures --patient <ref> [--since DATE] [--format text|fhir]`: the accounting of disclosures
// (45 CFR 164.528) for one patient, given in the catalog's canonical form (subjects/patients.yaml;
// src/registry/patient-key.ts) — every delivery to an accounted recipient (the catalog's external partners,
// or any service with accountDisclosures: true), six years back by default (164.528(a)(3)). Text: one line per
// disclosure (date, recipient, resource type, purpose, message id, elements). FHIR: a Bundle of AuditEvents.
import type { Writable } from 'node:stream';
import type { BrokerConfig } from '../config/config.js';
import { disclosureBundle } from '../disclosures/fhir.js';
import { readDisclosures, type StoredDisclosure } from '../disclosures/read.js';
import { canonicalPatientRef } from '../registry/patient-key.js';
import { patientPseudonym } from '../registry/pseudonym.js';
import { existingBrokerSecrets } from '../runtime/broker-secrets.js';
import { connectOperator, loadConfiguredCatalog } from '../runtime/data-dir.js';
import { recordOperatorAction } from '../runtime/operator-audit.js';

/** Six years back (164.528(a)(3)): the same calendar date six years earlier. */
export function defaultSince(now: number): Date {
  const d = new Date(now);
  d.setUTCFullYear(d.getUTCFullYear() - 6);
  return d;
}

/** An ISO 8601 date or date-time (`2026-01-31`, `2026-01-31T08:00:00Z`), or undefined. */
export function parseSince(value: string): Date | undefined {
  if (!/^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2}))?$/.test(value))
    return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

export function formatDisclosure(d: StoredDisclosure): string {
  const r = d.record;
  return `${new Date(r.at).toISOString()}  ${r.recipient}  ${r.type}  ${r.purpose}  message ${r.messageId}  elements: ${r.elements.join(', ')}`;
}

export async function runDisclosures(
  config: BrokerConfig,
  opts: { readonly patient: string; readonly since?: Date; readonly format: 'text' | 'fhir' },
  out: Writable = process.stdout,
  now: number = Date.now(),
): Promise<void> {
  // E_PATIENT_UNRESOLVED (naming no value) for a patient not in the rule's canonical form.
  const patient = canonicalPatientRef(opts.patient, loadConfiguredCatalog(config).patients);
  const since = opts.since ?? defaultSince(now);
  const pseudonym = patientPseudonym(await existingBrokerSecrets(config), patient);
  const nc = await connectOperator(config, 'phi-broker disclosures', 'read');
  let result: Awaited<ReturnType<typeof readDisclosures>>;
  try {
    result = await readDisclosures(nc, pseudonym, since);
    // The accounting names the patient's recipients: recorded before it is shown.
    await recordOperatorAction(config, nc, 'read', {
      action: 'disclosures',
      patientPseudonym: pseudonym,
      details: [
        ['since', since.toISOString()],
        ['format', opts.format],
        ['disclosures', String(result.disclosures.length)],
      ],
    });
  } finally {
    await nc.close();
  }
  if (opts.format === 'fhir') {
    out.write(`${JSON.stringify(disclosureBundle(result.disclosures, patient, now), null, 2)}\n`);
    return;
  }
  for (const d of result.disclosures) out.write(`${formatDisclosure(d)}\n`);
  const n = result.disclosures.length;
  out.write(
    `${n} disclosure${n === 1 ? '' : 's'} since ${since.toISOString()}${result.skipped > 0 ? ` (${result.skipped} unreadable message(s) skipped)` : ''}\n`,
  );
}
