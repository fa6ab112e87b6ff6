// The shipped partner profiles' `identifiers:` rules (fhir-profiles/patient-iis, immunization-iis, coverage-payer,
// claim-payer): a resource carrying an SSN in every place an Identifier can sit — typed SS under a kept system, or
// untyped under the us-ssn system, on the resource and on its references — reaches no partner; each partner keeps
// exactly the identifiers its comment names (MR for the immunization registry, MB/SN/NIIP/NPI for the payer). Every
// projection is a valid R4 resource.
import { describe, expect, it } from 'vitest';
import { partnerProfiles } from '../../src/gateway/profiles/structure-definition.js';
import { compileProfile } from '../../src/projection/compile.js';
import { DATA_ABSENT_REASON_URL } from '../../src/projection/masked.js';
import { pseudonymizer } from '../../src/projection/pseudonymizer.js';
import { loadCatalog } from '../../src/runtime/catalog-dir.js';
import { fhirSchemaErrors } from '../helpers/fhir-schema.js';
import type { Json } from './fixtures.js';
import { KEY_A, SHIPPED, deepFreeze } from './fixtures.js';

const ctx = { pseudonymize: pseudonymizer(KEY_A) };
const V2 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const typed = (code: string, system: string, value: string): Json => ({
  type: { coding: [{ system: V2, code }] },
  system,
  value,
});

const SITE_MRN = 'urn:oid:2.16.840.1.113883.19.5';
const MR = typed('MR', 'urn:example:mrn-elsewhere', 'MRN-7001');
const SITE = { system: SITE_MRN, value: 'SITE-7002' };
/** An SSN typed SS but filed under the site's MRN namespace (a kept system): drop wins. */
const SSN_TYPED = typed('SS', SITE_MRN, '999-70-1001');
const SSN_SYSTEM = { system: 'http://hl7.org/fhir/sid/us-ssn', value: '999-70-1002' };
const DL = typed('DL', 'urn:oid:2.16.840.1.113883.4.3.25', 'S7003');
const MB = typed('MB', 'urn:example:plan-members', 'MB-7004');
const SN = typed('SN', 'urn:example:plan-subscribers', 'SN-7005');
const NIIP = typed('NIIP', 'urn:example:payer-ids', 'NIIP-7006');
const NPI = { system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' };
const UNTYPED = { system: 'urn:example:claims', value: 'CLM-7007' };
const SSNS = [String(SSN_TYPED['value']), String(SSN_SYSTEM['value'])];
/** A repeating element the rule emptied, marked withheld (markMasked, data-absent-reason `masked`). */
const MASKED = [{ extension: [{ url: DATA_ABSENT_REASON_URL, valueCode: 'masked' }] }];

const catalog = loadCatalog(SHIPPED);
const byId = new Map(partnerProfiles(catalog).map((p) => [p.id, p]));

function projectWith(id: string, resource: Json): Json {
  const profile = byId.get(id);
  if (profile === undefined) throw new Error(`${id} is not a partner profile of the shipped catalog`);
  return compileProfile(profile)(deepFreeze(resource), ctx);
}

const inputs: Record<string, Json> = {
  'patient-iis': {
    resourceType: 'Patient',
    id: 'pi-1',
    identifier: [SSN_TYPED, MR, SSN_SYSTEM, DL, SITE, MB],
    name: [{ family: 'Vantreece', given: ['Ola'] }],
    birthDate: '1990-02-03',
  },
  'immunization-iis': {
    resourceType: 'Immunization',
    id: 'imm-1',
    identifier: [UNTYPED, SSN_SYSTEM],
    status: 'completed',
    vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '140' }] },
    patient: { reference: 'Patient/pi-1', identifier: SSN_TYPED },
    occurrenceDateTime: '2026-10-01',
    performer: [{ actor: { reference: 'Practitioner/pr-1', identifier: NPI } }],
    location: { reference: 'Location/l-1', identifier: SSN_SYSTEM },
  },
  'coverage-payer': {
    resourceType: 'Coverage',
    id: 'cov-1',
    identifier: [MB, SSN_TYPED, MR],
    status: 'active',
    subscriber: { reference: 'Patient/pi-1', identifier: SN },
    beneficiary: { reference: 'Patient/pi-1', identifier: SSN_SYSTEM },
    policyHolder: { reference: 'Patient/pi-1', identifier: SSN_TYPED },
    payor: [{ reference: 'Organization/payer-1', identifier: NIIP }],
  },
  'claim-payer': {
    resourceType: 'Claim',
    id: 'clm-1',
    identifier: [UNTYPED, SSN_SYSTEM],
    status: 'active',
    type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
    use: 'claim',
    patient: { reference: 'Patient/pi-1', identifier: SSN_TYPED },
    created: '2026-11-02',
    insurer: { reference: 'Organization/payer-1', identifier: NIIP },
    provider: { reference: 'Organization/hospital-1', identifier: NPI },
    priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
    careTeam: [{ sequence: 1, provider: { reference: 'Practitioner/pr-1', identifier: MR } }],
    insurance: [{ sequence: 1, focal: true, identifier: MB, coverage: { reference: 'Coverage/cov-1' } }],
  },
};

/** What each partner keeps of the identifiers above (the reasons are in each profile's comment). */
const expected: Record<string, (out: Json) => unknown> = {
  'patient-iis': (out) => expect(out['identifier']).toEqual([MR, SITE]),
  'immunization-iis': (out) => {
    expect(out['identifier']).toEqual(MASKED);
    expect(out['patient']).toEqual({ reference: 'Patient/pi-1' });
    expect(out['performer']).toEqual([{ actor: { reference: 'Practitioner/pr-1', identifier: NPI } }]);
    expect(out['location']).toEqual({ reference: 'Location/l-1' });
  },
  'coverage-payer': (out) => {
    expect(out['identifier']).toEqual([MB]);
    expect(out['subscriber']).toEqual({ reference: 'Patient/pi-1', identifier: SN });
    expect(out['beneficiary']).toEqual({ reference: 'Patient/pi-1' });
    expect(out['policyHolder']).toEqual({ reference: 'Patient/pi-1' });
    expect(out['payor']).toEqual([{ reference: 'Organization/payer-1', identifier: NIIP }]);
  },
  'claim-payer': (out) => {
    expect(out['identifier']).toEqual(MASKED);
    expect(out['patient']).toEqual({ reference: 'Patient/pi-1' });
    expect(out['insurer']).toEqual({ reference: 'Organization/payer-1', identifier: NIIP });
    expect(out['provider']).toEqual({ reference: 'Organization/hospital-1', identifier: NPI });
    expect(out['careTeam']).toEqual([{ sequence: 1, provider: { reference: 'Practitioner/pr-1' } }]);
    expect((out['insurance'] as Json[])[0]?.['identifier']).toEqual(MB);
  },
};

describe('the shipped partner profiles withhold every SSN', () => {
  it('covers every profile a partner receives, each with an identifiers rule that drops SS and the us-ssn system', () => {
    expect([...byId.keys()].sort()).toEqual(Object.keys(inputs).sort());
    for (const p of byId.values())
      expect(p.identifiers?.drop, p.id).toEqual(
        expect.arrayContaining([{ type: 'SS' }, { system: 'http://hl7.org/fhir/sid/us-ssn' }]),
      );
  });

  for (const [id, input] of Object.entries(inputs)) {
    it(`${id}: no SSN anywhere in the projection; it keeps what the partner needs; valid R4`, () => {
      expect(fhirSchemaErrors(input)).toEqual([]);
      const out = projectWith(id, input);
      for (const ssn of SSNS) expect(JSON.stringify(out)).not.toContain(ssn);
      expected[id]?.(out);
      expect(fhirSchemaErrors(out)).toEqual([]);
    });
  }
});
