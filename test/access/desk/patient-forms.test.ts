// The patient as the broker's copies to one service name it, and which profiles make a copy: the same tokens the
// projection writes (src/projection/pseudonymizer.ts, transforms.ts), so a holder's copies are recognised.
import { describe, expect, it } from 'vitest';
import { deliveredProfiles, pseudonymousPatientRef } from '../../../src/access/desk/patient-forms.js';
import { loadCatalog } from '../../../src/runtime/catalog-dir.js';
import { subscriberPseudonymKey } from '../../../src/crypto/broker-secrets.js';
import { pseudonymizer } from '../../../src/projection/pseudonymizer.js';
import { pseudonymIdentifier } from '../../../src/projection/transforms.js';

const MASTER = new Uint8Array(32).fill(7);
const ROOT = new URL('../../../', import.meta.url).pathname;

describe('pseudonymousPatientRef', () => {
  it("under match: reference, the Patient/<token> a pseudonymised reference or id gives that service's copies", () => {
    const p = pseudonymizer(subscriberPseudonymKey(MASTER, 'notification'));
    const ref = pseudonymousPatientRef(
      'Patient/p-77',
      { match: 'reference', unresolved: 'accept' },
      MASTER,
      'notification',
    );
    expect(ref).toBe(p('Patient/p-77'));
    expect(ref).toBe(`Patient/${p('p-77')}`);
    expect(
      pseudonymousPatientRef('Patient/p-77', { match: 'reference', unresolved: 'accept' }, MASTER, 'billing'),
    ).not.toBe(ref);
  });

  it('under match: identifier, <system>|<token of value>, as the pseudonym transform writes an Identifier', () => {
    const rule = { match: 'identifier', system: 'urn:oid:1.2.3', unresolved: 'accept' } as const;
    const p = pseudonymizer(subscriberPseudonymKey(MASTER, 'billing'));
    const id = pseudonymIdentifier({ system: 'urn:oid:1.2.3', value: 'MRN-9' }, { pseudonymize: p });
    expect(pseudonymousPatientRef('urn:oid:1.2.3|MRN-9', rule, MASTER, 'billing')).toBe(
      `${String(id?.['system'])}|${String(id?.['value'])}`,
    );
  });
});

describe('deliveredProfiles', () => {
  it('lists by type the profile URLs the example catalog routes to a service, and nothing for a non-subscriber', () => {
    const catalog = loadCatalog({ subjects: `${ROOT}subjects`, profiles: `${ROOT}fhir-profiles` });
    const urls = deliveredProfiles(catalog, 'notification');
    expect([...urls.keys()]).toEqual(['Patient']);
    expect([...(urls.get('Patient') ?? [])]).toEqual([catalog.profiles.get('patient-contact')?.url]);
    expect(deliveredProfiles(catalog, 'registration').size).toBe(0);
  });
});
