// The pipeline's patient-rights hooks, pure (no NATS): a restriction removes exactly the denied subscriber's copy
// and reports the deciding Consent; an accounted recipient's delivery carries the patient pseudonym and the element
// paths its profile let through (no masked marks, no values); disclosure records hold names and codes only and go on
// `phi.disclosure.<pseudonym>.<recipient>`; the catalog flag accountDisclosures overrides `external`.
import { beforeAll, describe, expect, it } from 'vitest';
import { checkEnvelope, routeMessage } from '../../src/broker/pipeline.js';
import { compileCatalog } from '../../src/catalog/compile.js';
import { DEFAULT_PATIENT_MATCH, accountsDisclosures } from '../../src/catalog/types.js';
import type { Restriction } from '../../src/consent/consent.js';
import { initCrypto } from '../../src/crypto/sodium.js';
import { disclosedElements } from '../../src/disclosures/elements.js';
import { decodeDisclosure, disclosureMessages } from '../../src/disclosures/record.js';
import { patientPseudonym } from '../../src/registry/pseudonym.js';
import { CLASSIFICATION, OBS_DEID, PATIENT_ALL, TOPICS } from '../catalog/fixtures.js';
import { NOW, PSEUDONYM_MASTER, context, patient, publication } from '../broker/fixtures.js';

const secrets = { pseudonymKey: PSEUDONYM_MASTER };
const patients = { rule: DEFAULT_PATIENT_MATCH, pseudonymOf: (ref: string): string => patientPseudonym(secrets, ref) };
const P = patientPseudonym(secrets, 'Patient/pat-broker-0001');

beforeAll(async () => {
  await initCrypto();
});

function route(extra: Parameters<typeof context>[0]) {
  return routeMessage(checkEnvelope(publication({ resource: patient() }), context(extra)), context(extra));
}

describe('restrictions in routeMessage', () => {
  const denyBilling: Restriction = {
    id: 'c-1',
    active: true,
    recipients: new Set(['billing']),
    purposes: new Set(),
    labels: new Set(),
    all: false,
  };

  it('removes only the denied recipient and names the Consent', () => {
    const restrictions = { hasAny: () => true, restrictionsOf: (p: string) => (p === P ? [denyBilling] : undefined) };
    const all = route({}).deliveries.map((d) => d.service);
    const r = route({ restrictions, patients });
    expect(r.deliveries.map((d) => d.service)).toEqual(all.filter((s) => s !== 'billing'));
    expect(r.restricted).toEqual([
      { service: 'billing', purpose: 'HPAYMT', denial: { consent: 'c-1', reason: 'recipient' } },
    ]);
  });

  it('leaves another patient alone', () => {
    const restrictions = {
      hasAny: () => true,
      restrictionsOf: (p: string) => (p === 'someone-else' ? [denyBilling] : undefined),
    };
    expect(route({ restrictions, patients }).restricted).toEqual([]);
  });
});

describe('disclosures in routeMessage', () => {
  it('marks accounted recipients only, with the pseudonym and the disclosed element paths', () => {
    const r = route({ accountedRecipients: new Set(['public-health']), patients });
    const accounted = r.deliveries.filter((d) => d.disclosure !== undefined);
    expect(accounted.map((d) => d.service)).toEqual(['public-health']);
    const d = accounted[0]?.disclosure;
    expect(d?.patients).toEqual([P]);
    expect(d?.elements).toContain('Patient.birthDate');
    // patient-iis keeps a typed MR or the site's MRN system only: this untyped urn:example:mrn is withheld, so not disclosed.
    expect(d?.elements.some((e) => e.startsWith('Patient.identifier'))).toBe(false);
    // patient-iis withholds telecom (masked mark present in the copy, but not a disclosure)
    expect(d?.elements.some((e) => e.startsWith('Patient.telecom'))).toBe(false);
    expect(JSON.stringify(d)).not.toMatch(/Vexlander|MRN-ZZ|1961/);
  });

  it('element paths: leaves only, no indices, masked marks skipped', () => {
    expect(
      disclosedElements({
        resourceType: 'Patient',
        id: 'x',
        name: [{ family: 'F', given: ['a', 'b'] }, { family: 'G' }],
        telecom: [
          { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }] },
        ],
        _birthDate: {
          extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }],
        },
      }),
    ).toEqual(['Patient.id', 'Patient.name.family', 'Patient.name.given']);
  });

  it('records carry names and codes only, on the patient pseudonym subject; unresolved patients are still recorded', () => {
    const msgs = disclosureMessages(
      { id: 'm-1', sender: 'registration', type: 'Patient' },
      [
        {
          service: 'public-health',
          msgId: 'm-1.public-health',
          profileUrl: 'urn:p',
          purpose: 'PUBHLTH',
          disclosure: { patients: [P], elements: ['Patient.birthDate'] },
        },
        { service: 'ehr', msgId: 'm-1.ehr', profileUrl: 'urn:q', purpose: 'TREAT' },
        {
          service: 'partner-payer',
          msgId: 'm-1.partner-payer',
          profileUrl: 'urn:r',
          purpose: 'HPAYMT',
          disclosure: { patients: [undefined], elements: [] },
        },
      ],
      NOW,
    );
    expect(msgs.map((m) => [m.subject, m.msgId, m.unresolved])).toEqual([
      [`phi.disclosure.${P}.public-health`, 'disclosure.m-1.public-health', false],
      ['phi.disclosure._unresolved.partner-payer', 'disclosure.m-1.partner-payer', true],
    ]);
    expect(decodeDisclosure(msgs[0]?.bytes ?? new Uint8Array())).toEqual({
      v: 1,
      id: 'm-1.public-health',
      at: NOW,
      recipient: 'public-health',
      type: 'Patient',
      purpose: 'PUBHLTH',
      profile: 'urn:p',
      elements: ['Patient.birthDate'],
      source: 'registration',
      messageId: 'm-1',
    });
    expect(decodeDisclosure(new TextEncoder().encode('{"v":1}'))).toBeUndefined();
  });

  it('a delivery about several patients (a whole Bundle) is recorded once per patient, each with its own de-duplication id', () => {
    const Q = patientPseudonym(secrets, 'Patient/pat-broker-0002');
    const msgs = disclosureMessages(
      { id: 'm-2', sender: 'registration', type: 'Bundle' },
      [
        {
          service: 'public-health',
          msgId: 'm-2.public-health',
          profileUrl: 'urn:p',
          purpose: 'PUBHLTH',
          disclosure: { patients: [P, Q, undefined], elements: ['Bundle.type'] },
        },
      ],
      NOW,
    );
    expect(msgs.map((m) => [m.subject, m.msgId, m.unresolved])).toEqual([
      [`phi.disclosure.${P}.public-health`, `disclosure.m-2.public-health.${P}`, false],
      [`phi.disclosure.${Q}.public-health`, `disclosure.m-2.public-health.${Q}`, false],
      ['phi.disclosure._unresolved.public-health', 'disclosure.m-2.public-health._unresolved', true],
    ]);
    expect(new Set(msgs.map((m) => decodeDisclosure(m.bytes)?.id))).toEqual(new Set(['m-2.public-health']));
  });
});

describe('catalog: accountDisclosures', () => {
  const services = (extra: string): string => `services:
  - id: front-desk
    owner: access
    description: Intake.
    classification: phi
  - id: clinic
    owner: clinical
    description: Care.
    classification: phi
${extra}  - id: research
    owner: science
    description: De-identified analysis.
    classification: deidentified
    external: true
    accountDisclosures: false
`;
  const compiled = (extra: string) =>
    compileCatalog([
      { file: 'subjects/services.yaml', kind: 'subjects', text: services(extra) },
      { file: 'subjects/topics.yaml', kind: 'subjects', text: TOPICS },
      { file: 'fhir-profiles/patient-all.yaml', kind: 'profile', text: PATIENT_ALL },
      { file: 'fhir-profiles/obs-deid.yaml', kind: 'profile', text: OBS_DEID },
      { file: 'fhir-profiles/classification.yaml', kind: 'classification', text: CLASSIFICATION },
    ]);

  it('defaults to external, and the flag overrides it both ways', () => {
    const { catalog, issues } = compiled(`  - id: partner
    owner: partners
    description: Outside.
    classification: phi
    external: true
  - id: lab
    owner: lab
    description: In house, accounted anyway.
    classification: phi
    accountDisclosures: true
`);
    expect(issues).toEqual([]);
    const accounted = [...(catalog?.services.values() ?? [])].filter(accountsDisclosures).map((s) => s.id);
    expect(accounted.sort()).toEqual(['lab', 'partner']);
  });
});
