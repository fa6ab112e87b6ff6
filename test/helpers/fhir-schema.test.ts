// The schema check itself: a valid R4 resource from the HL7 examples passes, and each kind of defect is reported.
import { describe, expect, it } from 'vitest';
import { fhirSchemaErrors } from './fhir-schema.js';

describe('fhirSchemaErrors (official FHIR R4 JSON schema)', () => {
  it('passes a valid Patient and Bundle', () => {
    expect(fhirSchemaErrors({ resourceType: 'Patient', id: 'p1', gender: 'female', birthDate: '1970-01-01' })).toEqual(
      [],
    );
    expect(
      fhirSchemaErrors({
        resourceType: 'Bundle',
        type: 'collection',
        entry: [{ fullUrl: 'urn:uuid:8dc35070-7dd6-5ad2-b1fe-d726a94c15ee', resource: { resourceType: 'Patient' } }],
      }),
    ).toEqual([]);
  });

  it('reports an unknown element, a wrong type, a bad code, an unknown resourceType, and each inside a Bundle', () => {
    expect(fhirSchemaErrors({ resourceType: 'Patient', foo: 1 }).length).toBeGreaterThan(0);
    expect(fhirSchemaErrors({ resourceType: 'Patient', active: 'yes' }).length).toBeGreaterThan(0);
    expect(fhirSchemaErrors({ resourceType: 'Patient', gender: 'x' }).length).toBeGreaterThan(0);
    expect(fhirSchemaErrors({ resourceType: 'Nonsense' }).length).toBeGreaterThan(0);
    expect(fhirSchemaErrors({ resourceType: 'Bundle', type: 'heap' }).length).toBeGreaterThan(0);
    const inside = {
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ resource: { resourceType: 'Patient', x: 1 } }],
    };
    expect(fhirSchemaErrors(inside).length).toBeGreaterThan(0);
  });
});
